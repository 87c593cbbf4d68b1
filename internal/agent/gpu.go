package agent

import (
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/paddock-ml/paddock/api"
)

func numCPU() int { return runtime.NumCPU() }

// detectGPUs asks nvidia-smi for the node's GPUs; none when it is missing
// or fails.
func detectGPUs() []api.GPUInfo {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil
	}
	out, err := exec.Command(path, "--query-gpu=index,name,uuid,memory.total", "--format=csv,noheader,nounits").Output()
	if err != nil {
		return nil
	}
	return parseNvidiaSMI(string(out))
}

// parseNvidiaSMI reads `nvidia-smi --query-gpu=index,name,uuid,memory.total
// --format=csv,noheader,nounits` output.
func parseNvidiaSMI(out string) []api.GPUInfo {
	var gpus []api.GPUInfo
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) < 4 {
			continue
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		idx, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		mem, _ := strconv.Atoi(f[3])
		gpus = append(gpus, api.GPUInfo{Index: idx, Name: f[1], UUID: f[2], MemoryMB: mem})
	}
	return gpus
}
