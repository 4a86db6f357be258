"""The garbage collector during a cold start; used by the entry modules only.

A full collection walks every object alive. Once ``boto3`` is imported that includes botocore's parsed
service models and endpoint rules, and one such pass costs about 25 ms, paid at some arbitrary import in
the middle of the cold start (``docs/performance.md`` §1). Module imports create almost no garbage cycles,
so each entry module pauses the collector before its imports (``pause``) and, once they are done,
moves everything alive into the permanent generation and resumes collecting (``settle``): later
collections, on the first record and every warm invocation after it, skip those long-lived objects.
Frozen objects are still freed by reference counting; only a cycle among them would never be collected.

``pause`` also gives the dataclasses defined by those imports the methods the synth compiled for them
(``dataclass_code.py``): compiling them is the larger part of what each dataclass costs a cold start.
"""

import gc


def pause() -> None:
    """Before the entry module's imports: no collection while the code is loading, and the dataclasses'
    methods from the zip (when it has them)."""
    gc.disable()
    from stagepilot.handlers import dataclass_code  # imports dataclasses: after the collector is paused

    dataclass_code.use_shipped()


def settle() -> None:
    """After them: what is alive now lives as long as the container; collect only what comes later."""
    gc.freeze()
    gc.enable()
