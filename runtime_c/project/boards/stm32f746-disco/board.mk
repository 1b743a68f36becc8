# stm32f746-disco: `make flash` writes the firmware through the ST-LINK with pyOCD
# (pip install pyocd). pyOCD needs the STM32F7 CMSIS pack once: pyocd pack install stm32f746xg
# The protocol then runs on the ST-LINK virtual COM port (/dev/ttyACM0 on Linux) at 115200 8N1.
PYOCD ?= pyocd
PYOCD_TARGET ?= stm32f746xg
flash: $(ELF)
	$(PYOCD) flash --target $(PYOCD_TARGET) $(ELF)
.PHONY: flash
