# The two commands of the README.
.PHONY: run test stubs bench redmine
run:    ## set up and run the daemon on its defaults
	scripts/run.sh
test:   ## set up and run the whole test suite (what CI runs)
	scripts/test.sh
stubs:  ## regenerate the committed Python and Ruby gRPC stubs
	PYTHON=.venv/bin/python scripts/gen_stubs.sh
bench:  ## set up ragd and its peers, then run the side-by-side benchmarks (BENCH_ARGS=--large|--gpu)
	scripts/setup.sh --test && benchmarks/setup_peers.sh && .venv/bin/python -m benchmarks $(BENCH_ARGS)
redmine: ## Debian's Redmine with the plugin, ragd and a CISI sample; prints the URL and logins
	scripts/redmine/demo.sh
