package testtool

import "net"

// FreePorts returns n distinct TCP ports free on 127.0.0.1 for a server a
// test starts. Each is held until all are picked, so they differ; another
// process may still take one before the server binds it.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
