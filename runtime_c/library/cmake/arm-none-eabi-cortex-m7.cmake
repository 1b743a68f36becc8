# CMake toolchain file: bare-metal Cortex-M7 with the Arm GNU toolchain (arm-none-eabi-gcc) and
# newlib-nano. Use: cmake -DCMAKE_TOOLCHAIN_FILE=<this file> -S . -B build-m7
#
# The FPU flags default to the STM32F746's single-precision FPv5; set TT_CM7_FPU=fpv5-d16 for a
# double-precision M7 (e.g. QEMU's mps2-an500). The firmware supplies startup code and a linker
# script (-T...) in its own link options; -nostartfiles leaves the C runtime start to it.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(TT_CROSS_PREFIX "arm-none-eabi-" CACHE STRING "prefix of the cross tools")
set(TT_CM7_FPU "fpv5-sp-d16" CACHE STRING "Cortex-M7 FPU: fpv5-sp-d16 or fpv5-d16")

set(CMAKE_C_COMPILER ${TT_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${TT_CROSS_PREFIX}g++)
set(CMAKE_ASM_COMPILER ${TT_CROSS_PREFIX}gcc)
set(CMAKE_AR ${TT_CROSS_PREFIX}ar)
set(CMAKE_RANLIB ${TT_CROSS_PREFIX}ranlib)

# A test executable cannot link without a linker script: CMake's compiler check builds a library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(TT_CM7_FLAGS "-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=${TT_CM7_FPU}")
set(CMAKE_C_FLAGS_INIT "${TT_CM7_FLAGS} -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "${TT_CM7_FLAGS} -ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "${TT_CM7_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${TT_CM7_FLAGS} --specs=nano.specs -nostartfiles -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
