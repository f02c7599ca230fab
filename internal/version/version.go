// Package version holds hyhome's release number, written here and nowhere
// else: the Makefile tags the project image hyhome:<Release>, the reference
// stack pins that tag (deploy/compose.yaml, checked by a test), and binaries
// report it unless the build stamps another (-ldflags -X .../cli.Version).
//
// A release number rather than a moving tag such as "local" is what the
// stack's own image-pinned rule asks of every image.
package version

// Release is this source tree's release.
const Release = "0.9.0"
