// Command const200 is the benchmark's reference server: a plain net/http
// server that answers every request with 200 and a constant body the size of
// http_status's "OK - service fine!" answer. It shows what net/http itself
// costs on this machine, so the daemon's numbers can be read against it.
//
//	go run ./bench/const200 -addr 127.0.0.1:18003
package main

import (
	"flag"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18003", "address to listen on")
	flag.Parse()
	body := []byte("OK - service fine!\n")
	srv := &http.Server{
		Addr:              *addr,
		ReadHeaderTimeout: 2 * time.Second,
		IdleTimeout:       60 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h["Content-Type"] = []string{"text/plain"}
			w.Write(body)
		}),
	}
	log.Fatal(srv.ListenAndServe())
}
