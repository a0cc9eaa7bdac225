# make test: what .ci/test does (install the tools the tests need, then go test ./...).
.PHONY: test ci
test:
	./.ci/test
ci:
	./.ci/run
