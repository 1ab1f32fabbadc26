package taskdef

import (
	"math"
	"strconv"
	"strings"
)

// ReservedCPUUnits is the CPU a task reserves, in units of which 1024 make
// one vCPU: the task-level cpu ("256" or "0.25 vCPU") when it parses, else
// the sum of the containers' cpu. 0 means it reserves none.
func (td *TaskDef) ReservedCPUUnits() int {
	if n, ok := taskSize(td.CPU, "vcpu"); ok {
		return n
	}
	units := 0
	for _, c := range td.ContainerDefinitions {
		units += c.CPU
	}
	return units
}

// ReservedMemoryMiB is the memory a task reserves: the task-level memory
// ("512" or "1 GB") when it parses, else the sum over containers of the
// hard limit or, without one, the soft reservation. 0 means none.
func (td *TaskDef) ReservedMemoryMiB() int {
	if n, ok := taskSize(td.Memory, "gb"); ok {
		return n
	}
	mib := 0
	for _, c := range td.ContainerDefinitions {
		if c.Memory > 0 {
			mib += c.Memory
		} else {
			mib += c.MemoryReservation
		}
	}
	return mib
}

// taskSize reads an ECS task-level size: a whole number of the small unit
// (CPU units, MiB) or a number of the large one (vCPU, GB = 1024 of them).
func taskSize(v, large string) (int, bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return 0, false
	}
	scale := 1.0
	if num, ok := strings.CutSuffix(v, large); ok {
		v, scale = strings.TrimSpace(num), 1024
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || f*scale > math.MaxInt32 {
		return 0, false
	}
	return int(math.Round(f * scale)), true
}
