"""`callsim serve`: the rating core behind a TCP protocol, and `callsim loadgen`, its load
generator (docs/server.md).

General layout:

- `_serve`: `serve`, the server's nursery: listeners, the exchange, connections, files.
- `_exchange`: the only task that touches the rating engine; it batches setups and
  hangups from every connection into one `RatingEngine.advance` per tick.
- `_connection`: one client: login, frames in, replies out (`Limits` caps what it may cost).
- `_budget`: what every connection together may hold in buffers, and who is paused or shed.
- `_outbox`: a connection's replies waiting for the client, with backpressure.
- `_wire`: framing and field-by-field validation of the protocol (shared with loadgen).
- `_messages`: the replies, encoded with the same text forms as the files.
- `_directory`: orgs, tokens and users: who may log in and place calls as whom.
- `_files`: the outputs written beside the server, in a child process by default.
- `_loadgen`: the client that measures setups per second and setup latency.
"""

from ._budget import MEMORY_SHARE as BUFFER_MEMORY_SHARE
from ._budget import BufferBudget, default_budget
from ._connection import Limits
from ._directory import TokenConflict, resolve_tokens, token_env_var
from ._loadgen import EXIT_FAILED, EXIT_USAGE, LoadError, LoadOptions, measure, run_loadgen
from ._exchange import CallSink, Exchange
from ._serve import DEFAULT_PORT, Edge, ServerConfig, ServerInfo, ServerResult, serve
from ._wire import FrameReader, ProtocolError, decode_payload, pack_frame

__all__ = [
    "BUFFER_MEMORY_SHARE", "BufferBudget", "CallSink", "DEFAULT_PORT", "EXIT_FAILED", "EXIT_USAGE", "Edge", "Exchange",
    "FrameReader", "Limits", "LoadError", "LoadOptions", "ProtocolError", "ServerConfig",
    "ServerInfo", "ServerResult", "TokenConflict", "decode_payload", "default_budget", "measure",
    "pack_frame", "resolve_tokens", "run_loadgen", "serve", "token_env_var",
]
