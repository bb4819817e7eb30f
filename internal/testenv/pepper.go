package testenv

// PayPeppers is the payment-password pepper of every pay a test runs, as
// PAY_PASSWORD_PEPPERS reads it: a pay refuses to start without one.
const PayPeppers = "test:H23UFairkZJvO5gdr1nPJ/mIaUuOnquiH1GnDIf8eaQ="

// PayPeppersEnv is PayPeppers as an entry of a process's environment.
const PayPeppersEnv = "PAY_PASSWORD_PEPPERS=" + PayPeppers
