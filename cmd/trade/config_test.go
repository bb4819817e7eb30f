package main

// loadConfigFrom loads env as the whole environment, on a laptop
// (PAYTRADE_DEV=1) unless env says otherwise.
func loadConfigFrom(env map[string]string) (tradeConfig, error) {
	return loadConfig(func(k string) string {
		if v, ok := env[k]; ok || k != "PAYTRADE_DEV" {
			return v
		}
		return "1"
	})
}
