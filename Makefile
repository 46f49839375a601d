# Same targets as CI; each one only calls tasks.py, which needs nothing but Python and pip.
.PHONY: demo test lint bench
demo:
	python3 tasks.py demo
test:
	python3 tasks.py test
lint:
	python3 tasks.py lint
bench:
	python3 tasks.py bench
