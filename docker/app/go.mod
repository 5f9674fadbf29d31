module example.com/ginit-gin-demo

go 1.19

require (
	github.com/coreos/go-systemd/v22 v22.3.2
	github.com/gin-gonic/gin v1.8.1
)
