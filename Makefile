# The two commands of the README.
.PHONY: run test stubs
run:    ## set up and run the daemon on its defaults
	scripts/run.sh
test:   ## set up and run the whole test suite (what CI runs)
	scripts/test.sh
stubs:  ## regenerate the committed Python and Ruby gRPC stubs
	PYTHON=.venv/bin/python scripts/gen_stubs.sh
