package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/paddock-ml/paddock/api"
)

func TestParseNvidiaSMI(t *testing.T) {
	t.Parallel()
	h100 := func(i int, uuid string) api.GPUInfo {
		return api.GPUInfo{Index: i, Name: "NVIDIA H100 80GB HBM3", UUID: uuid, MemoryMB: 81559}
	}
	tests := []struct {
		name string
		out  string
		want []api.GPUInfo
	}{
		{"empty", "", nil},
		{"two GPUs", "0, NVIDIA H100 80GB HBM3, GPU-aaa, 81559\n1, NVIDIA H100 80GB HBM3, GPU-bbb, 81559\n",
			[]api.GPUInfo{h100(0, "GPU-aaa"), h100(1, "GPU-bbb")}},
		{"no final newline", "0, NVIDIA H100 80GB HBM3, GPU-aaa, 81559",
			[]api.GPUInfo{h100(0, "GPU-aaa")}},
		{"blank lines and CRLF", "\n0, NVIDIA H100 80GB HBM3, GPU-aaa, 81559\r\n\r\n\n1, NVIDIA H100 80GB HBM3, GPU-bbb, 81559\r\n",
			[]api.GPUInfo{h100(0, "GPU-aaa"), h100(1, "GPU-bbb")}},
		{"spaces around fields", "   3 ,   Tesla T4  ,GPU-ccc,   15360   \n",
			[]api.GPUInfo{{Index: 3, Name: "Tesla T4", UUID: "GPU-ccc", MemoryMB: 15360}}},
		{"memory not available", "0, NVIDIA A100, GPU-ddd, [N/A]\n",
			[]api.GPUInfo{{Index: 0, Name: "NVIDIA A100", UUID: "GPU-ddd"}}},
		{"malformed lines are skipped", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n" +
			"0, too, few\n" +
			"x, NVIDIA A100, GPU-eee, 40960\n" +
			"index, name, uuid, memory.total [MiB]\n" +
			"1, NVIDIA A100, GPU-fff, 40960\n",
			[]api.GPUInfo{{Index: 1, Name: "NVIDIA A100", UUID: "GPU-fff", MemoryMB: 40960}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, parseNvidiaSMI(tt.out)); diff != "" {
				t.Errorf("parseNvidiaSMI(%q) (-want +got):\n%s", tt.out, diff)
			}
		})
	}
}
