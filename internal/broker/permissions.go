package broker

import (
	"slices"
	"strings"
)

// Permissions are what one broker user may do in a virtual host:
// RabbitMQ's configure, write and read patterns, each a regular expression
// that an exchange's or queue's whole name must match.
type Permissions struct {
	Configure, Write, Read string
}

// Permissions returns what a user needs to declare d (its exchanges and
// queues, configure; each binding, write on the queue and read on the
// exchange), to publish to the exchanges publishTo and park in d's
// dead-letter exchange (write), and to consume the queues consume (read):
// nothing more.
func (d Declaration) Permissions(publishTo, consume []string) Permissions {
	var configure, write, read []string
	for _, e := range d.Exchanges {
		configure = append(configure, e.Name)
	}
	for _, q := range d.Queues {
		configure = append(configure, q.Name)
		for _, b := range q.Bindings {
			write = append(write, q.Name)
			read = append(read, b.Exchange)
		}
	}
	write = append(append(write, publishTo...), d.DeadLetter.Exchange)
	read = append(read, consume...)
	return Permissions{Configure: Exactly(configure...), Write: Exactly(write...), Read: Exactly(read...)}
}

// Exactly returns a pattern that matches each of names and nothing else
// ("^$", nothing, for none). Every character but a letter, digit, _ or -
// is written as a class of its own ("pay[.]topic"): the pattern holds no
// backslash for a shell, a JSON file or an Erlang string to eat.
func Exactly(names ...string) string {
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	quoted := make([]string, 0, len(names))
	for _, name := range names {
		if name == "" {
			continue
		}
		var b strings.Builder
		for _, r := range name {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
				b.WriteRune(r)
			case r == '^' || r == '\\' || r == ']':
				b.WriteString(`\`)
				b.WriteRune(r)
			default:
				b.WriteString("[")
				b.WriteRune(r)
				b.WriteString("]")
			}
		}
		quoted = append(quoted, b.String())
	}
	if len(quoted) == 0 {
		return "^$"
	}
	return "^(" + strings.Join(quoted, "|") + ")$"
}
