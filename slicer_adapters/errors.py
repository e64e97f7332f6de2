"""Slicer errors, classified: a retryable error may succeed on another attempt, a permanent one never will.

SlicerError                       (retryable: bool)
├── SlicerUnavailable             permanent  the binary or its data files are missing
├── OperationNotSupported         permanent  this adapter cannot do what was asked
├── SlicerTimeout                 retryable  killed after the job's timeout
├── SlicerResourceExhausted       retryable  killed by the memory limit or a signal
└── SlicerFailed                  permanent  non-zero exit, or no usable output
    └── EmptySliceOutput          permanent  empty G-code or zero filament: never a result

Every error carries the tail of the process output (``output``) for the operator.
"""

from __future__ import annotations

from typing import ClassVar


class SlicerError(Exception):
    retryable: ClassVar[bool] = False
    code: ClassVar[str] = "slicer_error"

    def __init__(self, message: str, *, output: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.output = output[-4000:]


class SlicerUnavailable(SlicerError):
    code = "slicer_unavailable"


class OperationNotSupported(SlicerError):
    code = "operation_not_supported"


class SlicerTimeout(SlicerError):
    retryable = True
    code = "slicer_timeout"


class SlicerResourceExhausted(SlicerError):
    retryable = True
    code = "slicer_resource_exhausted"


class SlicerFailed(SlicerError):
    code = "slicer_failed"


class EmptySliceOutput(SlicerFailed):
    code = "empty_slice_output"
