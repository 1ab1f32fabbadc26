package taskdef

import "testing"

func TestReservations(t *testing.T) {
	for _, c := range []struct {
		name             string
		cpu, memory      string
		containers       []Container
		wantCPU, wantMiB int
	}{
		{"nothing reserved", "", "", []Container{{Name: "a"}}, 0, 0},
		{"task level units", "256", "512", []Container{{CPU: 128, Memory: 64}}, 256, 512},
		{"task level large units", "0.5 vCPU", "2 GB", nil, 512, 2048},
		{"no space, any case", "1vcpu", "1GB", nil, 1024, 1024},
		{"containers add up", "", "", []Container{{CPU: 256, Memory: 128}, {CPU: 512, MemoryReservation: 64}}, 768, 192},
		{"hard limit over soft", "", "", []Container{{Memory: 128, MemoryReservation: 64}}, 0, 128},
		{"unreadable task level falls back", "lots", "-5", []Container{{CPU: 100, Memory: 50}}, 100, 50},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &TaskDef{CPU: c.cpu, Memory: c.memory, ContainerDefinitions: c.containers}
			if got := d.ReservedCPUUnits(); got != c.wantCPU {
				t.Errorf("cpu units %d, want %d", got, c.wantCPU)
			}
			if got := d.ReservedMemoryMiB(); got != c.wantMiB {
				t.Errorf("memory %d MiB, want %d", got, c.wantMiB)
			}
		})
	}
}
