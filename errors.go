package hexeract

import "github.com/hexeract/hexeract/router"

// Permanent marks err as permanent: retry middleware does not retry it and
// the message goes to the dead-letter topic at once. Permanent(nil) is nil.
func Permanent(err error) error { return router.Permanent(err) }

// IsPermanent reports whether err, or an error it wraps, is permanent.
func IsPermanent(err error) bool { return router.IsPermanent(err) }
