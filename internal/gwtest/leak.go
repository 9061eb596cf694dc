package gwtest

import "go.uber.org/goleak"

// LeakOptions are the goroutines goleak may find that are not leaks:
// fasthttp's process-wide Date refresher, and its worker-pool cleaner, which
// sleeps out its idle interval before it sees a stopped server and exits.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	}
}
