// kubelet-portforward: test fixture. There is no kubelet (and no container
// runtime) on these machines, so this program serves the one kubelet
// endpoint port-forward needs, using Kubernetes' own kubelet streaming
// package (k8s.io/kubelet/pkg/cri/streaming/portforward) at the pinned
// version: the SPDY port-forward protocol kubectl speaks is then served by
// the real implementation. "Pod ports" are 127.0.0.1 ports on this
// machine. scripts/kube-build builds it with the Kubernetes binaries.
//
// Usage: kubelet-portforward ADDR   (prints the bound address, then serves)
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kubelet/pkg/cri/streaming/portforward"
)

type loopback struct{}

// PortForward connects a forwarded stream to 127.0.0.1:port.
func (loopback) PortForward(ctx context.Context, name string, uid types.UID, port int32, stream io.ReadWriteCloser) error {
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(c, stream); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(stream, c); done <- struct{}{} }()
	select {
	case <-done:
		<-done
	case <-ctx.Done():
	}
	return nil
}

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts, err := portforward.NewV4Options(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		portforward.ServePortForward(w, r, loopback{}, "pod", "uid", opts, 5*time.Minute, 30*time.Second,
			portforward.SupportedProtocols)
	})
	if err := http.Serve(ln, h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
