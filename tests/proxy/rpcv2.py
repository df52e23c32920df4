"""rpcv2: Smithy RPC v2 CBOR <-> AWS JSON 1.0, directed by botocore's shapes, for moto.

The Rust ``aws-sdk-cloudwatch`` (1.140) speaks only Smithy RPC v2 CBOR::

    POST /service/GraniteServiceVersion20100801/operation/DescribeAlarms
    Smithy-Protocol: rpc-v2-cbor
    Content-Type: application/cbor
    Accept: application/cbor

moto's server (5.2.1) answers that path with 404 but serves CloudWatch's AWS JSON 1.0 form
(``POST /``, ``X-Amz-Target: GraniteServiceVersion20100801.DescribeAlarms``). ``Translator``
turns the first into the second and moto's JSON answer back into what an RPC v2 CBOR service
answers. aws_proxy.py uses it with ``--cbor-to-json``.

What the SDK expects, from the protocol's specification (smithy-lang/smithy,
docs/source-2.0/additional-specs/protocols/smithy-rpc-v2-cbor.rst,
https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html):

* "Every response for the ``rpcv2Cbor`` protocol MUST contain a ``Smithy-Protocol`` header with
  the value of ``rpc-v2-cbor``." and "Buffered RPC responses: the value of the ``Content-Type``
  header MUST be ``application/cbor``." -- "Responses for operations with no defined output type
  (as in, they target the ``Unit`` shape) MUST NOT contain bodies in their HTTP responses. The
  ``Content-Type`` for the serialization format MUST NOT be set."
* "Responses for the ``rpcv2Cbor`` protocol SHOULD NOT contain the ``X-Amzn-ErrorType`` header.
  Type information is always serialized in the payload." -- so moto's is dropped.
* "Error responses in the ``rpcv2Cbor`` protocol MUST be serialized identically to standard
  responses with one additional component to distinguish which error is contained: a body field
  named ``__type``. This value of this component MUST contain the error's absolute shape-id."
  and "By default, all error shapes have a ``message`` field". moto writes
  ``GraniteServiceVersion20100801#ResourceNotFound``; the absolute shape id is
  ``com.amazonaws.cloudwatch#ResourceNotFound`` (the SDKs keep what follows ``#``).
* "Timestamps are serialized as major type 6, value tag 1 (epoch-based date/time) ... Values are
  either major type 0 (unsigned integer) or major type 1 (negative integer) for integer values or
  major type 7, value 25 (half-precision float), 26 (single-precision float), or 27
  (double-precision float) for floating-point values." -- "This protocol uses ``epoch-seconds``".
* blob: "Major type 2 (byte string)"; "Values that are ``null`` MUST be omitted from wire
  contents"; "The ``undefined`` CBOR value ... Servers MUST NOT serialize to this CBOR value and
  MUST deserialize this CBOR value to ``null``."
* "floating-point numeric types SHOULD NOT serialize into a half-precision (16 bit) numeric CBOR
  values": every double goes out as a 64-bit float (the Rust SDK's decoder, minicbor, reads a
  ``double`` only from a CBOR float and an ``integer`` only from a CBOR integer, so a JSON ``70``
  for a double must become ``70.0``: that is why the conversion follows the shapes).
* CloudWatch carries ``awsQueryCompatible``: the SDK takes the error code from the
  ``x-amzn-query-error: Code;Sender`` header when there is one (the Rust SDK's
  ``aws_query_compatible_errors.rs``, botocore's ``_do_query_compatible_error_parse``). moto sends
  that header; it is passed on.

JSON 1.0 side (https://smithy.io/2.0/aws/protocols/aws-json-1_0-protocol.html): timestamps are
epoch seconds (numbers), blobs base64 strings, and a float's NaN/Infinity are the strings
"NaN", "Infinity", "-Infinity".

moto does not check SigV4 signatures (moto/core/authorization.py checks them only once
``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been served, and that setting defaults to
infinity), so the rewritten request keeps the client's ``Authorization`` header: moto reads the
credential scope from it (access key -> account, ``monitoring`` -> CloudWatch) and ignores the
signature. Without that header moto routes the JSON request to S3.

cbor2 and botocore are imported on first use (``Translator.ensure_available``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import email.utils
import gzip
import io
import json
import math
import struct
import threading
import zlib
from dataclasses import dataclass

CBOR_CONTENT_TYPE = "application/cbor"
SMITHY_PROTOCOL = "rpc-v2-cbor"
JSON_1_0 = "application/x-amz-json-1.0"


@dataclass(frozen=True)
class Rpcv2Service:
    model: str          # botocore service name
    target_prefix: str  # X-Amz-Target prefix of its AWS JSON 1.0 form
    namespace: str      # Smithy namespace of its shapes (an error's absolute shape id)


# The {serviceName} segment of the RPC v2 path (the Smithy service shape's name) -> the service.
# Only these are translated; other rpc-v2-cbor calls are forwarded unchanged.
SERVICES: dict[str, Rpcv2Service] = {
    "GraniteServiceVersion20100801": Rpcv2Service(
        "cloudwatch", "GraniteServiceVersion20100801", "com.amazonaws.cloudwatch"),
}


def service_for(segment: str) -> Rpcv2Service | None:
    """The service a path's {serviceName} names. The spec says servers SHOULD also accept the
    absolute shape id with ``#`` replaced by ``.`` (``com.amazonaws.cloudwatch.Granite...``)."""
    s = SERVICES.get(segment)
    if s is None and "." in segment:
        ns, _, name = segment.rpartition(".")
        s = SERVICES.get(name)
        if s is not None and s.namespace != ns:
            s = None
    return s


class TranslationError(Exception):
    """A request that cannot be read as CBOR (or an answer that cannot be made one)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class F32(float):
    """A value of a Smithy ``float`` shape: encoded as a single-precision CBOR float."""


_SKIP = object()  # a null (or undefined) value: left out of the output
_SCALAR = object()  # not a container: _containers/_generic_containers leave it to their caller

_cbor2 = None


def cbor2_module():
    """Imports cbor2 (raises ImportError when it is not installed)."""
    global _cbor2
    if _cbor2 is None:
        import cbor2
        _cbor2 = cbor2
    return _cbor2


# ---------------------------------------------------------------------------------------------
# CBOR bytes <-> Python values
# ---------------------------------------------------------------------------------------------
def _raw_tag(tag: int):
    def dec(value, _immutable=False):
        return _cbor2.CBORTag(tag, value)
    return dec


def decode(body: bytes):
    """One CBOR data item -> Python values. An empty body is an empty structure. Tags 0 and 1
    (date/time) stay ``CBORTag``s so that what the client sent can be checked; ``undefined``
    becomes ``None`` (the spec's rule for servers). Raises ValueError when the body is not
    exactly one well-formed item."""
    if not body:
        return {}
    cbor2 = cbor2_module()
    fp = io.BytesIO(body)
    try:
        dec = cbor2.CBORDecoder(fp, semantic_decoders={0: _raw_tag(0), 1: _raw_tag(1)},
                                max_depth=200)
        value = dec.decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as e:
        raise ValueError(f"not CBOR: {e}") from None
    if fp.tell() != len(body):
        raise ValueError(f"{len(body) - fp.tell()} bytes after the CBOR data item")
    return _undefined_to_none(value)


def _undefined_to_none(v):
    if v is _cbor2.undefined:
        return None
    if isinstance(v, dict):
        return {k: _undefined_to_none(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_undefined_to_none(x) for x in v]
    if isinstance(v, _cbor2.CBORTag):
        return _cbor2.CBORTag(v.tag, _undefined_to_none(v.value))
    return v


def _enc_f64(encoder, value) -> None:
    encoder.write(b"\xfb" + struct.pack(">d", value))


def _enc_f32(encoder, value) -> None:
    encoder.write(b"\xfa" + struct.pack(">f", value))


def encode(value) -> bytes:
    """Python values -> CBOR, definite lengths; floats as 64-bit (``F32``: 32-bit) floats."""
    return cbor2_module().dumps(value, encoders={float: _enc_f64, F32: _enc_f32})


# ---------------------------------------------------------------------------------------------
# Values, walking botocore shapes (a shape of None: no model for this value)
# ---------------------------------------------------------------------------------------------
def _epoch(value):
    """A JSON timestamp (epoch seconds, ISO 8601 or an HTTP date) -> epoch seconds (int when
    whole, else float rounded to milliseconds). Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value)
        except ValueError:
            try:
                d = _dt.datetime.fromisoformat(value)
            except ValueError:
                d = email.utils.parsedate_to_datetime(value)  # raises ValueError/TypeError
            if d.tzinfo is None:
                d = d.replace(tzinfo=_dt.timezone.utc)
            x = d.timestamp()
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if not math.isfinite(x):
        raise ValueError(f"not a timestamp: {value!r}")
    x = round(x, 3)
    return int(x) if x.is_integer() else x


_JSON_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _json_float(x: float):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def _generic_containers(v, convert):
    """The part both shapeless conversions share: a null is left out, an object and an array are
    converted item by item with ``convert`` (a left-out array item stays as a null, keys become
    strings); any other value is ``_SCALAR``, for the caller."""
    if v is None:
        return _SKIP
    if isinstance(v, dict):
        return {str(k): y for k, x in v.items() if (y := convert(x)) is not _SKIP}
    if isinstance(v, list):
        return [None if (y := convert(x)) is _SKIP else y for x in v]
    return _SCALAR


def _containers(v, shape, convert, generic):
    """The part both shape-directed conversions share: a null is left out, a value without a
    shape (or of the wrong type for its shape, or a document) goes to ``generic``, a structure,
    list or map is converted member by member with ``convert`` (a left-out item of a sparse list
    or map stays as a null, of any other is dropped). A value of any other shape is ``_SCALAR``,
    for the caller."""
    if v is None:
        return _SKIP
    if shape is None:
        return generic(v)
    t = shape.type_name
    if t == "structure":
        if not isinstance(v, dict) or shape.metadata.get("document"):
            return generic(v)
        members = shape.members
        return {str(k): y for k, x in v.items() if (y := convert(x, members.get(k))) is not _SKIP}
    if t == "list":
        if not isinstance(v, list):
            return generic(v)
        sparse = _sparse(shape)
        items = [convert(x, shape.member) for x in v]
        return [None if y is _SKIP else y for y in items if y is not _SKIP or sparse]
    if t == "map":
        if not isinstance(v, dict):
            return generic(v)
        sparse = _sparse(shape)
        items = [(str(k), convert(x, shape.value)) for k, x in v.items()]
        return {k: None if y is _SKIP else y for k, y in items if y is not _SKIP or sparse}
    return _SCALAR


def _generic_to_json(v):
    """A CBOR value without a shape -> JSON (bytes as base64, tags unwrapped)."""
    out = _generic_containers(v, _generic_to_json)
    if out is not _SCALAR:
        return out
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, cbor2_module().CBORTag):
        return _generic_to_json(v.value)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, (str, int, bool)):
        return v
    if isinstance(v, _dt.datetime):
        return _epoch(v.isoformat())
    return str(v)  # Decimal, Fraction, ...: as text


def request_to_json(v, shape):
    """A decoded CBOR request value -> its AWS JSON 1.0 form, following ``shape``. Nulls are
    left out; a value of the wrong CBOR type is passed on as it is (moto or the model check
    will say what is wrong with it)."""
    out = _containers(v, shape, request_to_json, _generic_to_json)
    if out is not _SCALAR:
        return out
    t = shape.type_name
    if t == "timestamp":
        if isinstance(v, cbor2_module().CBORTag) and v.tag == 1:
            v = v.value
        elif isinstance(v, cbor2_module().CBORTag) and v.tag == 0 and isinstance(v.value, str):
            try:
                return _epoch(v.value)
            except (ValueError, TypeError):
                return v.value
        if isinstance(v, float):
            return _json_float(v)
        return _generic_to_json(v)
    if t == "blob":
        if isinstance(v, (bytes, bytearray)):
            return base64.b64encode(bytes(v)).decode()
        return _generic_to_json(v)
    if t in ("double", "float") and isinstance(v, float):
        return _json_float(v)
    return _generic_to_json(v)


def _sparse(shape) -> bool:
    return bool(getattr(shape, "_shape_model", {}).get("sparse"))


def _generic_to_cbor(v):
    out = _generic_containers(v, _generic_to_cbor)
    return v if out is _SCALAR else out


def response_to_cbor(v, shape):
    """A JSON answer value -> what the SDK's CBOR deserializer reads for ``shape``: timestamps
    as tag 1, blobs as byte strings, doubles as floats, integers as integers, nulls left out.
    Raises ValueError for a value that cannot be converted (a timestamp that is no date, a blob
    that is not base64)."""
    out = _containers(v, shape, response_to_cbor, _generic_to_cbor)
    if out is not _SCALAR:
        return out
    t = shape.type_name
    if t == "timestamp":
        return cbor2_module().CBORTag(1, _epoch(v))
    if t == "blob":
        if isinstance(v, str):
            try:
                return base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"blob {v[:40]!r} is not base64") from None
        return v
    if t in ("double", "float"):
        if isinstance(v, str) and v in _JSON_SPECIAL:
            x = _JSON_SPECIAL[v]
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            x = float(v)
        else:
            return v
        return F32(x) if t == "float" else x
    if t in ("integer", "long", "short", "byte"):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v
    if t == "boolean":
        if isinstance(v, str) and v in ("true", "false"):
            return v == "true"
        return v
    if t == "string":
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        return v
    return _generic_to_cbor(v)


# ---------------------------------------------------------------------------------------------
# Whole requests and answers
# ---------------------------------------------------------------------------------------------
@dataclass
class JsonRequest:
    service: Rpcv2Service
    operation: str
    path: str             # "/"
    headers: list         # [(name, value)] to send upstream
    body: bytes           # the JSON body


# Request headers that describe the CBOR body or the RPC v2 protocol: replaced.
_DROP_REQUEST = {"content-type", "content-length", "smithy-protocol", "accept",
                 "x-amz-target", "x-amzn-target", "content-encoding"}
# Answer headers that describe moto's JSON body: replaced (X-Amzn-ErrorType: see the spec above;
# "status" is a header moto adds to its error answers).
_DROP_RESPONSE = {"content-type", "content-length", "x-amzn-errortype", "status",
                  "transfer-encoding", "connection", "keep-alive"}


def _decompress(body: bytes, encoding: str) -> bytes:
    """Undo Content-Encoding (the SDKs gzip large PutMetricData bodies: requestCompression)."""
    for enc in reversed([e.strip().lower() for e in encoding.split(",") if e.strip()]):
        if enc == "gzip":
            body = gzip.decompress(body)
        elif enc == "deflate":
            body = zlib.decompress(body)
        elif enc != "identity":
            raise ValueError(f"unsupported Content-Encoding {enc!r}")
    return body


def cbor_error_body(code: str, message: str) -> bytes:
    return encode({"__type": code, "message": message})


class Translator:
    """Thread-safe; loads each botocore model once, on first use."""

    def __init__(self):
        self._lock = threading.Lock()
        self._session = None
        self._models: dict[str, object] = {}

    def ensure_available(self) -> None:
        """Imports botocore and cbor2 (raises ImportError if one is missing)."""
        with self._lock:
            if self._session is None:
                cbor2_module()
                import botocore.session
                self._session = botocore.session.get_session()

    def model(self, name: str):
        m = self._models.get(name)
        if m is None:
            self.ensure_available()
            with self._lock:
                m = self._models.get(name)
                if m is None:
                    m = self._models[name] = self._session.get_service_model(name)
        return m

    def warm(self) -> None:
        for s in SERVICES.values():
            try:
                self.model(s.model)
            except Exception:  # noqa: BLE001 - best effort
                pass

    def _operation(self, svc: Rpcv2Service, operation: str):
        m = self.model(svc.model)
        return m.operation_model(operation) if operation in m.operation_names else None

    # -- request ---------------------------------------------------------------------------
    def request(self, service_segment: str, operation: str, headers, body: bytes) -> JsonRequest:
        """The AWS JSON 1.0 request for an RPC v2 CBOR one. ``headers``: (name, value) pairs.
        Raises TranslationError (the client's fault: answer 400) or KeyError (a service this
        module does not translate)."""
        svc = service_for(service_segment)
        if svc is None:
            raise KeyError(service_segment)
        headers = list(headers)
        encoding = next((v for k, v in headers if k.lower() == "content-encoding"), "")
        try:
            raw = _decompress(body, encoding) if encoding else body
        except (OSError, EOFError, ValueError, zlib.error) as e:
            raise TranslationError("SerializationException",
                                   f"cannot decode the {encoding} request body: {e}") from None
        try:
            value = decode(raw)
        except ValueError as e:
            raise TranslationError("SerializationException",
                                   f"the request body is not CBOR ({e})") from None
        op = self._operation(svc, operation)
        shape = op.input_shape if op is not None else None
        if not isinstance(value, dict):
            raise TranslationError("SerializationException",
                                   "the request body is not a CBOR map (an input structure)")
        out = request_to_json(value, shape)
        data = json.dumps(out if out is not _SKIP else {}, separators=(",", ":"),
                          allow_nan=False).encode()
        hdrs = [(k, v) for k, v in headers if k.lower() not in _DROP_REQUEST]
        hdrs += [("X-Amz-Target", f"{svc.target_prefix}.{operation}"),
                 ("Content-Type", JSON_1_0)]
        return JsonRequest(svc, operation, "/", hdrs, data)

    # -- answer ----------------------------------------------------------------------------
    def response(self, req: JsonRequest, status: int, headers, body: bytes):
        """moto's JSON answer -> (status, headers, body) as the RPC v2 CBOR service answers.
        An answer that is not JSON (moto's HTML 500 for an operation it lacks, say) keeps its
        status (502 for a 2xx) with a ``ProxyTranslationError`` body saying what it was."""
        headers = list(headers)
        keep = [(k, v) for k, v in headers if k.lower() not in _DROP_RESPONSE]
        ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
        op = self._operation(req.service, req.operation)
        try:
            value = json.loads(body) if body.strip() else ({} if status < 300 else None)
            if status < 300 and not isinstance(value, dict):
                raise ValueError("not a JSON object")
            if status >= 300 and not (isinstance(value, dict) and
                                      isinstance(value.get("__type"), str)):
                raise ValueError("not a JSON error object with __type")
        except (ValueError, RecursionError, UnicodeDecodeError) as e:
            snippet = body[:200].decode("utf-8", "replace")
            msg = (f"moto answered {req.service.model} {req.operation} with HTTP {status} and "
                   f"a body that is not what AWS JSON 1.0 answers ({e}; Content-Type "
                   f"{ctype!r}): {snippet!r}")
            return self._error(502 if status < 300 else status, keep,
                               "ProxyTranslationError", msg)

        if status < 300:
            shape = op.output_shape if op is not None else None
            if op is not None and shape is None:  # Unit output: no body, no Content-Type
                return status, keep + [("smithy-protocol", SMITHY_PROTOCOL)], b""
            try:
                out = response_to_cbor(value, shape)
                data = encode(out if out is not _SKIP else {})
            except (ValueError, TypeError, OverflowError) as e:
                return self._error(502, keep, "ProxyTranslationError",
                                   f"cannot turn moto's answer to {req.operation} into CBOR: {e}")
            return status, keep + self._cbor_headers(), data

        # An error: "__type" becomes the absolute shape id, members follow the error's shape.
        code = value["__type"].split(":", 1)[0].rsplit("#", 1)[-1]
        shape = self._error_shape(req.service, code)
        if shape is not None:
            code = shape.name
        try:
            out = response_to_cbor({k: x for k, x in value.items() if k != "__type"}, shape)
        except (ValueError, TypeError) as e:
            out = {"message": f"(moto's error body could not be converted: {e})"}
        if out is _SKIP or not isinstance(out, dict):
            out = {}
        message = value.get("message") or value.get("Message")
        if "message" not in out and isinstance(message, str):
            out["message"] = message
        # moto writes both "message" and "Message"; keep "Message" only where the shape may
        # have it (botocore leaves the message member out of some error shapes)
        if shape is not None and "message" in shape.members and "Message" not in shape.members:
            out.pop("Message", None)
        body_out = encode({"__type": f"{req.service.namespace}#{code}", **out})
        return status, keep + self._cbor_headers(), body_out

    def _error_shape(self, svc: Rpcv2Service, code: str):
        m = self.model(svc.model)
        if code in m.shape_names:
            s = m.shape_for(code)
            if s.type_name == "structure" and s.metadata.get("exception"):
                return s
        for s in m.error_shapes:  # by its query-compatible code
            if s.metadata.get("error", {}).get("code") == code:
                return s
        return None

    @staticmethod
    def _cbor_headers() -> list:
        return [("Content-Type", CBOR_CONTENT_TYPE), ("smithy-protocol", SMITHY_PROTOCOL)]

    def _error(self, status: int, keep: list, code: str, message: str):
        return status, keep + self._cbor_headers(), cbor_error_body(code, message)
