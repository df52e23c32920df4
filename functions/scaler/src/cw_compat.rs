//! CloudWatch over AWS JSON 1.0 for endpoints that do not speak Smithy RPC v2 CBOR.
//!
//! aws-sdk-cloudwatch (1.140) speaks only RPC v2 CBOR (`POST /service/GraniteServiceVersion20100801/
//! operation/OP`); moto's server (5.2.x, the project's test bed) answers that with 404 and has no
//! plan to support it, but does serve AWS JSON 1.0 (`X-Amz-Target: GraniteServiceVersion20100801.OP`),
//! as CloudWatch itself does. This interceptor rewrites the request to JSON 1.0 before signing and
//! the JSON answer back to CBOR before the SDK deserialises it. It is installed only when a custom
//! endpoint is configured (`AWS_ENDPOINT_URL`), never against AWS's default endpoints.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{BeforeTransmitInterceptorContextMut, FinalizerInterceptorContextMut};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::client::ser_de::{DeserializeResponse, SharedResponseDeserializer};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde_json::{Map, Number, Value};

const TARGET_PREFIX: &str = "GraniteServiceVersion20100801";

#[derive(Debug, Default)]
pub struct JsonInsteadOfCbor;

/// Marks an attempt whose request went out as JSON.
#[derive(Debug, Clone)]
struct Rewritten;

impl Storable for Rewritten {
    type Storer = StoreReplace<Self>;
}

impl Intercept for JsonInsteadOfCbor {
    fn name(&self) -> &'static str {
        "JsonInsteadOfCbor"
    }

    fn modify_before_signing(&self, ctx: &mut BeforeTransmitInterceptorContextMut<'_>, _rc: &RuntimeComponents, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        let req = ctx.request_mut();
        let uri = req.uri().to_string();
        let Some((base, op)) = uri.split_once(&format!("/service/{TARGET_PREFIX}/operation/")) else { return Ok(()) };
        let (op, base) = (op.split('?').next().unwrap_or(op).to_string(), base.to_string());
        let json = match req.body().bytes() {
            Some(b) if !b.is_empty() => decode(b)?,
            _ => Value::Object(Map::new()),
        };
        let body = json.to_string();
        req.set_uri(format!("{base}/"))?;
        let h = req.headers_mut();
        h.remove("smithy-protocol");
        h.remove("accept");
        h.insert("content-type", "application/x-amz-json-1.0");
        h.insert("x-amz-target", format!("{TARGET_PREFIX}.{op}"));
        h.insert("content-length", body.len().to_string());
        *req.body_mut() = SdkBody::from(body);
        cfg.interceptor_state().store_put(Rewritten);
        Ok(())
    }

    /// The SDK reads the body only after `modify_before_deserialization`, so the answer is
    /// converted once it is buffered and deserialised again with the operation's deserializer.
    fn modify_before_attempt_completion(&self, ctx: &mut FinalizerInterceptorContextMut<'_>, _rc: &RuntimeComponents, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        if cfg.load::<Rewritten>().is_none() {
            return Ok(());
        }
        let Some(resp) = ctx.response_mut() else { return Ok(()) };
        // moto labels its JSON answers "Content-Type: text": look at the body.
        let is_cbor = resp.headers().get("content-type").is_some_and(|c| c.contains("cbor"));
        let looks_json = resp.body().bytes().is_some_and(|b| b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{'));
        if is_cbor || !looks_json {
            return Ok(());
        }
        let value: Value = serde_json::from_slice(resp.body().bytes().unwrap_or_default())?;
        let mut out = Vec::new();
        encode(&value, false, &mut out);
        let h = resp.headers_mut();
        h.insert("content-type", "application/cbor");
        h.insert("smithy-protocol", "rpc-v2-cbor");
        h.insert("content-length", out.len().to_string());
        *resp.body_mut() = SdkBody::from(out);
        let deserializer = cfg.load::<SharedResponseDeserializer>().ok_or("no response deserializer in the config bag")?;
        let result = deserializer.deserialize_nonstreaming_with_config(resp, cfg);
        if let Some(slot) = ctx.output_or_error_mut() {
            *slot = result;
        }
        Ok(())
    }
}

fn is_timestamp_key(k: &str) -> bool {
    k.ends_with("Timestamp") || k.ends_with("Timestamps") || k == "StartDate" || k == "EndDate" || k == "StartTime" || k == "EndTime"
}

fn head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes())
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes())
        }
        _ => {
            out.push(m | 27);
            out.extend(n.to_be_bytes())
        }
    }
}

/// JSON → CBOR; numbers under timestamp-named keys become tag-1 epoch seconds.
pub fn encode(v: &Value, timestamp: bool, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Number(n) => {
            if timestamp {
                out.push(0xc1);
            }
            if let Some(u) = n.as_u64() {
                head(0, u, out)
            } else if let Some(i) = n.as_i64() {
                head(1, (-1 - i) as u64, out)
            } else {
                out.push(0xfb);
                out.extend(n.as_f64().unwrap_or(0.0).to_be_bytes())
            }
        }
        Value::String(s) => {
            head(3, s.len() as u64, out);
            out.extend(s.as_bytes())
        }
        Value::Array(a) => {
            head(4, a.len() as u64, out);
            a.iter().for_each(|x| encode(x, timestamp, out))
        }
        Value::Object(m) => {
            let live: Vec<_> = m.iter().filter(|(_, v)| !v.is_null()).collect();
            head(5, live.len() as u64, out);
            for (k, x) in live {
                encode(&Value::String(k.clone()), false, out);
                encode(x, is_timestamp_key(k), out);
            }
        }
    }
}

/// CBOR → JSON (the subset the SDK's requests use: no byte strings).
pub fn decode(bytes: &[u8]) -> Result<Value, BoxError> {
    let mut pos = 0;
    let v = item(bytes, &mut pos)?.ok_or("unexpected CBOR break")?;
    Ok(v)
}

fn take<'a>(b: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], BoxError> {
    let s = b.get(*pos..*pos + n).ok_or("truncated CBOR")?;
    *pos += n;
    Ok(s)
}

fn arg(b: &[u8], pos: &mut usize, ai: u8) -> Result<Option<u64>, BoxError> {
    Ok(Some(match ai {
        0..=23 => ai as u64,
        24 => take(b, pos, 1)?[0] as u64,
        25 => u16::from_be_bytes(take(b, pos, 2)?.try_into()?) as u64,
        26 => u32::from_be_bytes(take(b, pos, 4)?.try_into()?) as u64,
        27 => u64::from_be_bytes(take(b, pos, 8)?.try_into()?),
        31 => return Ok(None),
        _ => return Err("invalid CBOR additional information".into()),
    }))
}

fn half(bits: u16) -> f64 {
    let exp = ((bits >> 10) & 0x1f) as i32;
    let mant = (bits & 0x3ff) as f64;
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 => if mant == 0.0 { f64::INFINITY } else { f64::NAN },
        _ => (1.0 + mant / 1024.0) * 2f64.powi(exp - 15),
    };
    if bits & 0x8000 != 0 { -v } else { v }
}

/// One item, or `None` at a break (0xff) of an indefinite container.
fn item(b: &[u8], pos: &mut usize) -> Result<Option<Value>, BoxError> {
    let first = take(b, pos, 1)?[0];
    let (major, ai) = (first >> 5, first & 0x1f);
    if first == 0xff {
        return Ok(None);
    }
    let v = match major {
        0 => Value::from(arg(b, pos, ai)?.ok_or("indefinite integer")?),
        1 => Value::from(-1 - arg(b, pos, ai)?.ok_or("indefinite integer")? as i64),
        2 => return Err("CBOR byte strings are not supported here".into()),
        3 => match arg(b, pos, ai)? {
            Some(n) => Value::String(String::from_utf8(take(b, pos, n as usize)?.to_vec())?),
            None => {
                let mut s = String::new();
                while let Some(chunk) = item(b, pos)? {
                    s.push_str(chunk.as_str().ok_or("bad string chunk")?);
                }
                Value::String(s)
            }
        },
        4 => {
            let mut a = Vec::new();
            match arg(b, pos, ai)? {
                Some(n) => {
                    for _ in 0..n {
                        a.push(item(b, pos)?.ok_or("unexpected break")?);
                    }
                }
                None => {
                    while let Some(x) = item(b, pos)? {
                        a.push(x);
                    }
                }
            }
            Value::Array(a)
        }
        5 => {
            let mut m = Map::new();
            let mut entry = |pos: &mut usize| -> Result<bool, BoxError> {
                let Some(k) = item(b, pos)? else { return Ok(false) };
                let v = item(b, pos)?.ok_or("unexpected break")?;
                m.insert(k.as_str().ok_or("non-string map key")?.to_string(), v);
                Ok(true)
            };
            match arg(b, pos, ai)? {
                Some(n) => {
                    for _ in 0..n {
                        entry(pos)?;
                    }
                }
                None => while entry(pos)? {},
            }
            Value::Object(m)
        }
        6 => {
            arg(b, pos, ai)?;
            item(b, pos)?.ok_or("unexpected break")?
        }
        _ => match ai {
            20 => Value::Bool(false),
            21 => Value::Bool(true),
            22 | 23 => Value::Null,
            25 => float(half(u16::from_be_bytes(take(b, pos, 2)?.try_into()?))),
            26 => float(f32::from_be_bytes(take(b, pos, 4)?.try_into()?) as f64),
            27 => float(f64::from_be_bytes(take(b, pos, 8)?.try_into()?)),
            _ => return Err("unsupported CBOR simple value".into()),
        },
    };
    Ok(Some(v))
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let v = json!({"AlarmNames": ["a", "b"], "MaxRecords": 100, "Threshold": 70.5, "Neg": -3, "On": true, "Nested": {"x": "é"}});
        let mut out = Vec::new();
        encode(&v, false, &mut out);
        assert_eq!(decode(&out).unwrap(), v);
        // Indefinite map {"a": [1]} with an indefinite array.
        assert_eq!(decode(&[0xbf, 0x61, b'a', 0x9f, 0x01, 0xff, 0xff]).unwrap(), json!({"a": [1]}));
        assert_eq!(decode(&[0xf9, 0x3c, 0x00]).unwrap(), json!(1.0));
        let mut ts = Vec::new();
        encode(&json!({"StateUpdatedTimestamp": 1.5}), false, &mut ts);
        assert!(ts.contains(&0xc1), "timestamps are tagged");
    }
}
