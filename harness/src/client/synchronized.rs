//! Last-byte synchronisation: a burst whose requests all become complete at
//! one instant. Each request goes on a connection of its own, all of it but
//! its final byte; once every server has read those, the final bytes go out
//! back to back. A server can act on no request before it is complete, so
//! the handlers all start within microseconds of each other — where a
//! burst of ordinary concurrent requests is spread by connection set-up,
//! scheduling and the network, and a read-then-write race often slips
//! between them. (The technique of Burp Suite's Turbo Intruder, for HTTP/1.1.)
//!
//! Plain `http://` only: over TLS, and for a burst too large, the requests
//! go through the pool concurrently as before, which [`Client::synchronized_for`]
//! tells the caller.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Client, Outgoing, Reply, Request};

/// The most requests one synchronised burst holds (one connection each).
pub const MAX_SYNCHRONIZED: usize = 256;

/// How long the servers get to read the partial requests before the final
/// bytes go.
const SETTLE: Duration = Duration::from_millis(50);

/// The most of an answer kept.
const MAX_ANSWER: usize = 4 << 20;

impl Client {
    /// Whether a burst of `requests` goes out synchronised (plain HTTP, at
    /// most [`MAX_SYNCHRONIZED`]).
    pub fn synchronized_for(&self, requests: &[Request]) -> bool {
        self.prepare_synchronized(requests).is_some()
    }

    /// Each request as it goes out and as raw bytes, if all can go raw.
    fn prepare_synchronized(&self, requests: &[Request]) -> Option<Vec<(Outgoing, Wire)>> {
        if requests.len() > MAX_SYNCHRONIZED {
            return None;
        }
        requests
            .iter()
            .map(|r| {
                let outgoing = self.outgoing(r);
                wire(&outgoing).map(|w| (outgoing, w))
            })
            .collect()
    }

    /// Sends `requests` so that they complete at the same instant (see the
    /// module); answers come back in order, transport failures as status 0.
    /// Where that cannot be done ([`Client::synchronized_for`]), they are
    /// sent through the pool all at once.
    pub async fn send_synchronized(&self, requests: Vec<Request>) -> Vec<Reply> {
        let Some(prepared) = self.prepare_synchronized(&requests) else {
            return futures::future::join_all(requests.into_iter().map(|r| self.send(r))).await;
        };
        self.sent
            .fetch_add(prepared.len() as u64, std::sync::atomic::Ordering::Relaxed);
        // Connections, and every request but its last byte.
        let mut streams = futures::future::join_all(prepared.iter().map(|(_, w)| async move {
            let mut stream = tokio::time::timeout(self.timeout, TcpStream::connect(w.address.as_str()))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            stream
                .write_all(&w.bytes[..w.bytes.len() - 1])
                .await
                .map_err(|e| format!("write: {e}"))?;
            Ok::<_, String>(stream)
        }))
        .await;
        tokio::time::sleep(SETTLE).await;
        // The final bytes, back to back.
        for (stream, (_, w)) in streams.iter_mut().zip(&prepared) {
            if let Ok(s) = stream {
                if let Err(e) = s.write_all(&w.bytes[w.bytes.len() - 1..]).await {
                    *stream = Err(format!("write: {e}"));
                }
            }
        }
        let answers = futures::future::join_all(streams.into_iter().map(|stream| async move {
            let mut stream = stream?;
            let mut raw = Vec::new();
            let read = async {
                let mut chunk = [0u8; 16 << 10];
                loop {
                    let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                    if n == 0 || raw.len() >= MAX_ANSWER {
                        break;
                    }
                    raw.extend_from_slice(&chunk[..n]);
                    if complete(&raw) {
                        break;
                    }
                }
                Ok::<_, String>(())
            };
            tokio::time::timeout(self.timeout, read)
                .await
                .map_err(|_| format!("no complete answer within {:.1} s", self.timeout.as_secs_f64()))??;
            parse(&raw)
        }))
        .await;
        prepared
            .into_iter()
            .zip(answers)
            .map(|((outgoing, _), answer)| match answer {
                Ok((status, headers, body)) => self.reply(outgoing, status, headers, body),
                Err(e) => self.reply(
                    outgoing,
                    0,
                    Vec::new(),
                    format!("transport error: {e}").into_bytes(),
                ),
            })
            .collect()
    }
}

/// A request as bytes, and where they go.
struct Wire {
    address: String,
    bytes: Vec<u8>,
}

/// The HTTP/1.1 bytes of `outgoing`, or `None` where it cannot be sent raw
/// (not plain HTTP, or a header no server should be sent).
fn wire(outgoing: &Outgoing) -> Option<Wire> {
    let url = reqwest::Url::parse(&outgoing.url).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let mut target = url.path().to_string();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let method = &outgoing.method;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {authority}\r\n");
    for (name, value) in &outgoing.headers {
        // What the pool would refuse too: no line breaks, no control bytes.
        let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        let value_ok = value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        if !name_ok || !value_ok {
            return None;
        }
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) {
            return None;
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = outgoing.body.as_deref().unwrap_or_default();
    if !body.is_empty() || matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    Some(Wire {
        address: format!("{host}:{port}"),
        bytes,
    })
}

/// Whether `raw` holds a whole answer (by its length or its last chunk;
/// otherwise the server's close ends it).
fn complete(raw: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = response.parse(raw) else {
        return false;
    };
    let body = &raw[head..];
    if let Some(length) =
        header(response.headers, "content-length").and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= length;
    }
    if header(response.headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        return dechunk(body).is_some();
    }
    false
}

/// Status, headers and body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// A whole answer read.
fn parse(raw: &[u8]) -> Result<Answer, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(raw) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return Err("the connection closed mid-answer".into()),
        Err(e) => return Err(format!("not an HTTP/1.1 answer: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let body = &raw[head..];
    let list: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let body = if header(response.headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        dechunk(body).ok_or("a chunked body cut short")?
    } else if let Some(length) =
        header(response.headers, "content-length").and_then(|v| v.trim().parse::<usize>().ok())
    {
        body.get(..length)
            .ok_or("a body shorter than its content-length")?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok((status, list, body))
}

fn header<'a>(headers: &'a [httparse::Header<'a>], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| String::from_utf8_lossy(h.value).into_owned())
}

/// A chunked body decoded, or `None` until its last chunk is there.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if body.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_sized_answers_are_read_whole() {
        let sized = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhello";
        assert!(complete(sized) && !complete(&sized[..sized.len() - 1]));
        let (status, headers, body) = parse(sized).unwrap();
        assert_eq!((status, body.as_slice()), (200, b"hello".as_slice()));
        assert!(headers.contains(&("x-a".into(), "1".into())));
        let chunked = b"HTTP/1.1 429 Too Many Requests\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert!(complete(chunked) && !complete(&chunked[..chunked.len() - 7]));
        assert_eq!(parse(chunked).unwrap().2, b"abcde");
        assert!(parse(&chunked[..chunked.len() - 7]).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort").is_err());
        assert!(parse(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn only_plain_http_with_clean_headers_goes_raw() {
        let outgoing = |url: &str, headers: Vec<(&str, &str)>| Outgoing {
            method: "POST".into(),
            url: url.into(),
            headers: headers.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            body: Some(b"{}".to_vec()),
            transcript: String::new(),
        };
        let w = wire(&outgoing("http://127.0.0.1:8080/a b?q=1", vec![("x-org", "o")])).unwrap();
        assert_eq!(w.address, "127.0.0.1:8080");
        assert_eq!(
            String::from_utf8(w.bytes).unwrap(),
            "POST /a%20b?q=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nx-org: o\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"
        );
        assert!(wire(&outgoing("https://example.com/", vec![])).is_none());
        assert!(wire(&outgoing("http://h/", vec![("x", "a\r\nhost: evil")])).is_none());
        assert!(wire(&outgoing("http://h/", vec![("bad name", "v")])).is_none());
        assert!(wire(&outgoing("http://h/", vec![("Host", "other")])).is_none());
        assert_eq!(wire(&outgoing("http://h/", vec![])).unwrap().address, "h:80");
    }
}
