"""oneDNN kernels called through ``ctypes`` on the library's C API (see :mod:`.library`)."""
