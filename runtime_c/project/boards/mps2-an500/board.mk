# mps2-an500: `make run` starts QEMU with UART0 on a TCP port and waits for one client, e.g.
#   python -c "import tinytvm.micro as m; print(m.Client('socket://127.0.0.1:5555').info())"
# -icount shift=0 makes the timer count guest instructions (the STATS cycle fields).
QEMU ?= qemu-system-arm
PORT ?= 5555
run: $(ELF)
	$(QEMU) -M mps2-an500 -nographic -monitor none -icount shift=0 \
	  -serial tcp:127.0.0.1:$(PORT),server=on,wait=on,nodelay=on -kernel $(ELF)
.PHONY: run
