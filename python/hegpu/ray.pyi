from typing import Any, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from ._hegpu import Client, Model, Parameters

class BatchFailure:
    index: int
    reason: str

class JobResult:
    results: list[Union[bytes, BatchFailure]]
    seconds: float
    server_seconds: list[float]
    @property
    def failures(self) -> list[BatchFailure]: ...

class PipelineResult:
    outputs: list[Union[npt.NDArray[np.float32], BatchFailure]]
    images: int
    seconds: float
    encrypt_seconds: float
    decrypt_seconds: float
    server_seconds: list[float]
    most_in_flight: int
    @property
    def failures(self) -> list[BatchFailure]: ...
    @property
    def images_per_second(self) -> float: ...

EncryptedServer: Any

class ServerPool:
    actors: list[Any]
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Any: ...
    def shutdown(self) -> None: ...

def start_servers(params: Union[Parameters, bytes], keys: bytes, model: Union[Model, bytes],
                  calibration: npt.NDArray[np.float32], *, workers: int = 2, device: str = "cpu",
                  threads: int = 1, num_gpus: float = 0, max_retries: int = 3,
                  packing: str = "batch", per_ciphertext: int = 1) -> ServerPool: ...
def run_job(batches: Sequence[bytes], servers: ServerPool) -> JobResult: ...
def run_pipelined(client: Client, images: npt.NDArray[np.float32], servers: ServerPool,
                  input_range: tuple[float, float], *, batch: int = 4096,
                  in_flight: int = 2) -> PipelineResult: ...
