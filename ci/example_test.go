package ci_test

import (
	"fmt"

	"github.com/snapring/snapring/ci"
	"github.com/snapring/snapring/results"
)

// A suite gating on one engine/baseline ratio, with everything else
// reported only.
func ExampleParseSuite() {
	s, err := ci.ParseSuite("pr.yaml", []byte(`
repeats: 10
alpha: 0.01
scenarios:
  - builtin: default
metrics:
  - {group: ratio, class: origin-write, metric: p50, gate: true, threshold: 30%}
  - {gate: false}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Name, s.Order, s.Runs())
	fmt.Printf("%+v\n", s.Policy.For(results.GroupRatio, results.OriginWrite, results.MetricP50))
	fmt.Printf("%+v\n", s.Policy.For(results.GroupRatio, results.OriginWrite, results.MetricP99))

	_, err = ci.ParseSuite("bad.yaml", []byte("scenarios:\n  - builtin: default\n    repeats: 0\n"))
	fmt.Println(err)
	// Output:
	// pr interleaved 10
	// {Gate:true ThresholdPct:30 Alpha:0.01}
	// {Gate:false ThresholdPct:10 Alpha:0.01}
	// bad.yaml:3: bad repeats: want a whole number from 1 to 100, got 0
}
