package verify

import (
	"math"
	"sort"
)

// distribution summarises values (seconds) with nearest-rank percentiles:
// the p-th percentile is the smallest value at or above which p% of the
// values lie, so it is always a measured value, never an interpolation that
// understates the tail of a handful of trials.
func distribution(vals []float64) Distribution {
	if len(vals) == 0 {
		return Distribution{}
	}
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	return Distribution{
		N:    len(s),
		Min:  s[0],
		P50:  nearestRank(s, 50),
		P95:  nearestRank(s, 95),
		Max:  s[len(s)-1],
		Mean: sum / float64(len(s)),
	}
}

// nearestRank returns the p-th percentile of sorted values.
func nearestRank(sorted []float64, p float64) float64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}
