// A Gin web server made for zero-downtime reloads under ginit.
//
// Three things make it so, and they are all a Gin app of your own needs:
//  1. Take the listening socket from ginit (systemd's LISTEN_FDS protocol) instead of
//     binding it: the socket outlives every process, so no connection is refused while
//     one instance replaces another. Without ginit, $PORT is bound as usual.
//  2. Say READY=1 (sd_notify) once serving: ginit stops the old instance only then.
//  3. On SIGTERM, drain like a lame duck: stop accepting (the new instance accepts from the
//     same socket), answer requests on open keep-alive connections with "Connection: close"
//     so clients reconnect to the new instance, then shut down when they are gone.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/gin-gonic/gin"
)

func main() {
	// Two small extra roles for the container example: a oneshot and a sidecar.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "migrate":
			fmt.Println("migrations: schema up to date")
			return
		case "heartbeat":
			stop := make(chan os.Signal, 1)
			signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
			for t := time.NewTicker(10 * time.Second); ; {
				fmt.Println("heartbeat: all good")
				select {
				case <-t.C:
				case <-stop:
					return
				}
			}
		}
	}
	// What the Go runtime was told of this process's share of the machine (ginit sets
	// GOMAXPROCS and GOMEMLIMIT from cpu_max, memory_max and the container's CPU quota).
	fmt.Printf("runtime: GOMAXPROCS=%d GOMEMLIMIT=%d\n", runtime.GOMAXPROCS(0), debug.SetMemoryLimit(-1))
	var draining atomic.Bool
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(func(c *gin.Context) {
		if draining.Load() {
			c.Header("Connection", "close") // lame duck: this client's next request goes elsewhere
		}
	})
	r.GET("/", func(c *gin.Context) {
		c.String(http.StatusOK, "hello from pid %d\n", os.Getpid())
	})
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/slow", func(c *gin.Context) { // ?ms=N: a request that takes a while
		ms, _ := strconv.Atoi(c.DefaultQuery("ms", "1000"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		c.String(http.StatusOK, "slow request done by pid %d\n", os.Getpid())
	})

	ln := listener()
	var open atomic.Int64 // connections not yet closed
	srv := &http.Server{Handler: r, ConnState: func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}}
	go srv.Serve(ln)
	daemon.SdNotify(false, daemon.SdNotifyReady) // no-op without NOTIFY_SOCKET

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	draining.Store(true)
	ln.Close() // only this process's handle: ginit and the new instance keep the socket
	for deadline := time.Now().Add(10 * time.Second); open.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx) // whatever is left: finish in-flight requests, close idle connections
}

// listener returns the socket ginit passed (LISTEN_FDS), or binds $PORT (default 8080).
func listener() net.Listener {
	if ls, err := activation.Listeners(); err == nil && len(ls) > 0 {
		return ls[0]
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return ln
}
