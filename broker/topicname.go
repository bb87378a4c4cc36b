package broker

import (
	"errors"
	"fmt"
)

// maxTopicNameLength is Kafka's limit on topic name length.
const maxTopicNameLength = 249

// validateTopicName applies Kafka's topic naming rules: 1-249 characters
// from [a-zA-Z0-9._-], and not "." or "..".
func validateTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	case len(name) > maxTopicNameLength:
		return fmt.Errorf("topic name is %d characters, the limit is %d", len(name), maxTopicNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has illegal character %q; legal are [a-zA-Z0-9._-]", name, c)
		}
	}
	return nil
}
