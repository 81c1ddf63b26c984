//go:build race

package labtest

// e2eRaceDetector: the test binary (and so the e2e load generator) runs under the race detector.
const e2eRaceDetector = true
