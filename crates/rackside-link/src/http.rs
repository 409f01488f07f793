//! HTTP/1.1 messages as the link carries them: one complete request or response per
//! [`Message`](crate::Message), with a `Content-Length` body and no chunking.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::Error;

/// The maximum number of headers in a message over the link.
const MAX_HEADERS: usize = 64;

/// Encodes a request line, headers and body.
pub fn encode_request(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: bmc.link\r\n").into_bytes();
    write_headers(&mut out, headers, body.map_or(0, <[u8]>::len));
    out.extend_from_slice(body.unwrap_or_default());
    out
}

/// Encodes a status line, headers and body.
pub fn encode_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    write_headers(&mut out, headers, body.len());
    out.extend_from_slice(body);
    out
}

fn write_headers(out: &mut Vec<u8>, headers: &HeaderMap, body_len: usize) {
    for (name, value) in headers {
        if name == http::header::CONTENT_LENGTH
            || name == http::header::TRANSFER_ENCODING
            || name == http::header::HOST
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {body_len}\r\n\r\n").as_bytes());
}

/// A parsed request.
#[derive(Debug)]
pub struct ParsedRequest {
    /// The method.
    pub method: Method,
    /// The path with query.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, empty when there is none.
    pub body: Bytes,
}

/// A parsed response.
#[derive(Debug)]
pub struct ParsedResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// Parses one complete request.
///
/// # Errors
///
/// [`Error::Http`] for a malformed or incomplete head, a bad method, or a body that does
/// not match `Content-Length`.
pub fn parse_request(bytes: &[u8]) -> Result<ParsedRequest, Error> {
    let mut header_slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut header_slots);
    let head_len = complete(request.parse(bytes))?;
    let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
        .map_err(|error| http_error(format!("invalid method: {error}")))?;
    let path = request.path.unwrap_or_default().to_owned();
    if !path.starts_with('/') {
        return Err(http_error(format!(
            "request target {path:?} is not an absolute path"
        )));
    }
    let headers = to_header_map(request.headers)?;
    let body = body_after(bytes, head_len, &headers)?;
    Ok(ParsedRequest {
        method,
        path,
        headers,
        body,
    })
}

/// Parses one complete response.
///
/// # Errors
///
/// [`Error::Http`] as for [`parse_request`].
pub fn parse_response(bytes: &[u8]) -> Result<ParsedResponse, Error> {
    let mut header_slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut header_slots);
    let head_len = complete(response.parse(bytes))?;
    let status = StatusCode::from_u16(response.code.unwrap_or_default())
        .map_err(|error| http_error(format!("invalid status: {error}")))?;
    let headers = to_header_map(response.headers)?;
    let body = body_after(bytes, head_len, &headers)?;
    Ok(ParsedResponse {
        status,
        headers,
        body,
    })
}

fn complete(status: Result<httparse::Status<usize>, httparse::Error>) -> Result<usize, Error> {
    match status {
        Ok(httparse::Status::Complete(length)) => Ok(length),
        Ok(httparse::Status::Partial) => Err(http_error("incomplete head".into())),
        Err(error) => Err(http_error(format!("malformed head: {error}"))),
    }
}

fn to_header_map(headers: &[httparse::Header<'_>]) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for header in headers {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| http_error(format!("invalid header name {:?}", header.name)))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| http_error(format!("invalid value of header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

fn body_after(bytes: &[u8], head_len: usize, headers: &HeaderMap) -> Result<Bytes, Error> {
    let body = bytes.get(head_len..).unwrap_or_default();
    let declared = match headers.get(http::header::CONTENT_LENGTH) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok())
            .ok_or_else(|| http_error("invalid Content-Length".into()))?,
        None => 0,
    };
    if declared != body.len() {
        return Err(http_error(format!(
            "body of {} bytes where Content-Length says {declared}",
            body.len()
        )));
    }
    Ok(Bytes::copy_from_slice(body))
}

fn http_error(detail: String) -> Error {
    Error::Http { detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let mut headers = HeaderMap::new();
        headers.insert("x-auth-token", HeaderValue::from_static("abc"));
        let bytes = encode_request(
            &Method::PATCH,
            "/redfish/v1/Systems/1",
            &headers,
            Some(b"{}"),
        );
        let parsed = parse_request(&bytes).unwrap();
        assert_eq!(parsed.method, Method::PATCH);
        assert_eq!(parsed.path, "/redfish/v1/Systems/1");
        assert_eq!(parsed.headers["x-auth-token"], "abc");
        assert_eq!(&parsed.body[..], b"{}");
    }

    #[test]
    fn response_with_wrong_length_is_rejected() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert!(parse_response(bytes).is_err());
    }

    #[test]
    fn incomplete_head_is_rejected() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Le").is_err());
    }
}
