package results

// BaselineClassFor returns the baseline class an engine class is measured
// against, given the classes the baseline side has: origin writes against
// the raw write, image reads against the raw read, and image writes against
// a raw image write if the baseline has one, else the raw write. It returns
// false if the baseline has no matching class.
func BaselineClassFor(engine Class, baseline map[Class]ClassResult) (Class, bool) {
	var want Class
	switch engine {
	case OriginWrite, OriginWriteCoW, OriginWriteCopied:
		want = OriginWrite
	case ImageRead, ImageReadOriginal, ImageReadMemory, ImageReadDiff:
		want = ImageRead
	case ImageWrite:
		if _, ok := baseline[ImageWrite]; ok {
			return ImageWrite, true
		}
		want = OriginWrite
	default:
		return "", false
	}
	_, ok := baseline[want]
	return want, ok
}

// ComputeRatios fills r.Ratios with engine/baseline ratios for every engine
// class that has operations and a matching baseline class. It clears
// r.Ratios when there is no baseline.
func ComputeRatios(r *Result) {
	r.Ratios = nil
	if r.Baseline == nil {
		return
	}
	for c, eng := range r.Engine.Classes {
		bc, ok := BaselineClassFor(c, r.Baseline.Classes)
		if !ok || eng.Count == 0 {
			continue
		}
		base := r.Baseline.Classes[bc]
		if base.Count == 0 {
			continue
		}
		ratio := Ratio{
			Baseline: bc,
			P50:      ratioOf(float64(eng.P50Ns), float64(base.P50Ns)),
			P99:      ratioOf(float64(eng.P99Ns), float64(base.P99Ns)),
		}
		if c.Aggregate() {
			ratio.IOPS = ratioOf(eng.IOPS, base.IOPS)
			ratio.MBps = ratioOf(eng.MBps, base.MBps)
		}
		if r.Ratios == nil {
			r.Ratios = make(map[Class]Ratio)
		}
		r.Ratios[c] = ratio
	}
}

// ratioOf returns num/den, or 0 (undefined) when either is not positive.
func ratioOf(num, den float64) float64 {
	if num <= 0 || den <= 0 {
		return 0
	}
	return num / den
}
