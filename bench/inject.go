package bench

import (
	"fmt"
	"os"
	"time"
)

// InjectEngineDelayEnv names the environment switch that adds a fixed delay
// to every operation the benchmark issues to the engine, before it is
// submitted (SNAPRING_INJECT_ENGINE_DELAY=200us). It exists to prove that a
// regression gate sees a real slowdown of the engine path end to end (the
// run, the results, the comparison and the CI outputs), which a doctored
// result file cannot. The raw baseline side is untouched, so the
// engine/baseline ratios move as they would for a slower engine.
const InjectEngineDelayEnv = "SNAPRING_INJECT_ENGINE_DELAY"

// maxInjectedDelay bounds the switch: a typo such as 200s must not turn a
// run into a hang.
const maxInjectedDelay = 100 * time.Millisecond

// injectedEngineDelay returns the delay the switch asks for, 0 when unset.
// A value that does not parse, or is out of range, is an error: a gate that
// silently ignores its test switch would pass for the wrong reason.
func injectedEngineDelay() (time.Duration, error) {
	v, ok := os.LookupEnv(InjectEngineDelayEnv)
	if !ok || v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > maxInjectedDelay {
		return 0, fmt.Errorf("%w: %s=%q: want a duration from 0 to %v", ErrRun, InjectEngineDelayEnv, v, maxInjectedDelay)
	}
	return d, nil
}

// delayEngineOp sleeps for at least the injected delay. It sleeps rather
// than spins: a worker spinning on a 2-vCPU machine starved the engine's own
// threads and io-wq (one run of three managed 8 operations in 600 ms, 190 ms
// each), which makes the injected slowdown erratic instead of fixed. The
// cost is precision: a short sleep lasts at least a timer tick (about
// 1.5 ms against 200us asked on a loaded 2-vCPU VM), so the switch adds at
// least, not exactly, what it says.
func delayEngineOp(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}
