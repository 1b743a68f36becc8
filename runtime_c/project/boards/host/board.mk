# host: `make run` serves the protocol on one TCP connection.
PORT ?= 5555
run: $(EXE)
	TT_PORT=$(PORT) ./$(EXE)
.PHONY: run
