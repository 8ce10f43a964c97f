"""The one Metropolis–Hastings accept/reject step shared by every MH sampler."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import torch
from torch import Tensor

State = TypeVar("State")


def metropolis_hastings(delta_f: Tensor, log_q_reverse: Tensor | float,
                        log_q_forward: Tensor | float, generator: torch.Generator) -> Tensor:
    """Accept each chain's proposal x → x' with probability min(1, exp(log_accept)).

    log_accept = [f(x') − f(x)] + log q(x | x') − log q(x' | x), all ``(B,)``; a NaN rejects.
    Returns ``(B,)`` bool. The uniform draws come from ``generator`` (on the tensors' device).
    """
    log_accept = delta_f + log_q_reverse - log_q_forward
    uniform = torch.rand(log_accept.shape, generator=generator, dtype=log_accept.dtype,
                         device=log_accept.device)
    return torch.log(uniform) < log_accept


def select(accept: Tensor, proposal: State, current: State) -> State:
    """Per chain, the proposal's tensors where ``accept`` and the current ones elsewhere.

    Works on any state dataclass whose tensor fields have the chains as first dimension;
    fields that are ``None`` or not tensors are taken from the proposal.
    """
    chosen = {}
    for field in dataclasses.fields(proposal):
        new, old = getattr(proposal, field.name), getattr(current, field.name)
        if isinstance(new, Tensor):
            mask = accept.view(-1, *([1] * (new.ndim - 1)))
            new = torch.where(mask, new, old)
        chosen[field.name] = new
    return type(proposal)(**chosen)
