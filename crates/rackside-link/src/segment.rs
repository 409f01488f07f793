//! Segmentation: messages split into numbered segments that fit one BLE ATT payload.
//!
//! The scheme follows Matter's Bluetooth Transport Protocol: a connect exchange negotiates the
//! segment size and the window, every data segment carries a sequence number, the receiver
//! acknowledges cumulatively, and a sender never has more than `window` segments unacknowledged.
//! The radio below is reliable and ordered, so any gap, repeat or reordering is an attack or a
//! fault and ends the link.
//!
//! Wire format, first byte the kind:
//!
//! | kind | name | rest |
//! |---|---|---|
//! | `0x10` | connect request | version, maximum segment size, window |
//! | `0x11` | connect accept | version, segment size, window |
//! | `0x12` | refuse | reason code |
//! | `0x13` | close | nothing |
//! | `0x14` | scan request | nothing |
//! | `0x15` | advertisement | JSON [`Advertisement`](crate::Advertisement) |
//! | `0x20..=0x27` | data | flags in the low bits (begin `1`, end `2`, ack `4`), sequence number, ack if flagged, total length as u16 big-endian if begin, payload |
//! | `0x30` | ack | acknowledged sequence number |

use std::collections::VecDeque;

use crate::Error;

/// The smallest segment size, the BLE 4.0 ATT payload (23 byte MTU less 3).
pub const MIN_SEGMENT_SIZE: usize = 20;
/// The largest segment size, the BLE 4.2+ ATT payload with data length extension (247 less 3).
pub const MAX_SEGMENT_SIZE: usize = 244;
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// The largest window either side accepts.
pub const MAX_WINDOW: u8 = 16;
/// The largest reassembled message: one TLS record with its header and expansion.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 + 2048 + 5;

const KIND_CONNECT: u8 = 0x10;
const KIND_ACCEPT: u8 = 0x11;
const KIND_REFUSE: u8 = 0x12;
const KIND_CLOSE: u8 = 0x13;
const KIND_SCAN: u8 = 0x14;
const KIND_ADVERTISEMENT: u8 = 0x15;
const KIND_DATA: u8 = 0x20;
const KIND_ACK: u8 = 0x30;
const FLAG_BEGIN: u8 = 1;
const FLAG_END: u8 = 2;
const FLAG_ACK: u8 = 4;
/// Kind, sequence number, ack and total length.
const MAX_DATA_HEADER: usize = 5;

/// The reason code of a rejected connection request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefuseReason {
    /// Another device has the link open.
    Busy,
    /// Too many failed logins; the button must be pressed again.
    LockedOut,
    /// The request's version or parameters are not supported.
    Unsupported,
    /// A code this version does not know.
    Other(u8),
}

impl RefuseReason {
    fn code(self) -> u8 {
        match self {
            RefuseReason::Busy => 1,
            RefuseReason::LockedOut => 2,
            RefuseReason::Unsupported => 3,
            RefuseReason::Other(code) => code,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => RefuseReason::Busy,
            2 => RefuseReason::LockedOut,
            3 => RefuseReason::Unsupported,
            other => RefuseReason::Other(other),
        }
    }

    /// Converts the refusal into the error the client reports.
    pub fn into_error(self) -> Error {
        match self {
            RefuseReason::Busy => Error::Busy,
            RefuseReason::LockedOut => Error::LockedOut,
            other => Error::Refused { code: other.code() },
        }
    }
}

/// One decoded segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A client asks to open the link.
    Connect {
        /// The client's protocol version.
        version: u8,
        /// The largest segment the client can send and receive.
        max_segment_size: u8,
        /// The client's receive window in segments.
        window: u8,
    },
    /// The BMC accepts and fixes the parameters.
    Accept {
        /// The BMC's protocol version.
        version: u8,
        /// The segment size both sides use from now on.
        segment_size: u8,
        /// The window both sides use from now on.
        window: u8,
    },
    /// The BMC refuses the connection.
    Refuse(RefuseReason),
    /// Either side ends the link.
    Close,
    /// A client asks activated BMCs in range to describe themselves.
    Scan,
    /// A BMC's reply to a scan, as JSON.
    Advertisement(Vec<u8>),
    /// A part of a message.
    Data {
        /// The segment's sequence number.
        seq: u8,
        /// A cumulative acknowledgement of the peer's segments, when one is due.
        ack: Option<u8>,
        /// The message's total length, on the first segment only.
        total: Option<u16>,
        /// Whether this is the last segment of the message.
        end: bool,
        /// The bytes of the message this segment carries.
        payload: Vec<u8>,
    },
    /// A standalone cumulative acknowledgement.
    Ack(u8),
}

impl Segment {
    /// Decodes one segment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSegment`] when the segment is empty, truncated, of an unknown kind, or
    /// has bytes left over.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (&kind, rest) = bytes
            .split_first()
            .ok_or_else(|| Error::segment("empty segment"))?;
        match kind {
            KIND_CONNECT => match rest {
                &[version, max_segment_size, window] => Ok(Segment::Connect {
                    version,
                    max_segment_size,
                    window,
                }),
                _ => Err(Error::segment("connect request is not 4 bytes")),
            },
            KIND_ACCEPT => match rest {
                &[version, segment_size, window] => Ok(Segment::Accept {
                    version,
                    segment_size,
                    window,
                }),
                _ => Err(Error::segment("connect accept is not 4 bytes")),
            },
            KIND_REFUSE => match rest {
                &[code] => Ok(Segment::Refuse(RefuseReason::from_code(code))),
                _ => Err(Error::segment("refusal is not 2 bytes")),
            },
            KIND_CLOSE if rest.is_empty() => Ok(Segment::Close),
            KIND_SCAN if rest.is_empty() => Ok(Segment::Scan),
            KIND_ADVERTISEMENT => Ok(Segment::Advertisement(rest.to_vec())),
            KIND_ACK => match rest {
                &[ack] => Ok(Segment::Ack(ack)),
                _ => Err(Error::segment("ack is not 2 bytes")),
            },
            kind if kind & 0xf8 == KIND_DATA => decode_data(kind & 0x07, rest),
            other => Err(Error::segment(format!(
                "unknown kind {other:#04x} of a {}-byte segment",
                bytes.len()
            ))),
        }
    }

    /// Encodes the segment.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Segment::Connect {
                version,
                max_segment_size,
                window,
            } => vec![KIND_CONNECT, *version, *max_segment_size, *window],
            Segment::Accept {
                version,
                segment_size,
                window,
            } => vec![KIND_ACCEPT, *version, *segment_size, *window],
            Segment::Refuse(reason) => vec![KIND_REFUSE, reason.code()],
            Segment::Close => vec![KIND_CLOSE],
            Segment::Scan => vec![KIND_SCAN],
            Segment::Advertisement(json) => {
                let mut out = vec![KIND_ADVERTISEMENT];
                out.extend_from_slice(json);
                out
            }
            Segment::Ack(ack) => vec![KIND_ACK, *ack],
            Segment::Data {
                seq,
                ack,
                total,
                end,
                payload,
            } => {
                let mut flags = 0;
                if total.is_some() {
                    flags |= FLAG_BEGIN;
                }
                if *end {
                    flags |= FLAG_END;
                }
                if ack.is_some() {
                    flags |= FLAG_ACK;
                }
                let mut out = Vec::with_capacity(MAX_DATA_HEADER + payload.len());
                out.push(KIND_DATA | flags);
                out.push(*seq);
                if let Some(ack) = ack {
                    out.push(*ack);
                }
                if let Some(total) = total {
                    out.extend_from_slice(&total.to_be_bytes());
                }
                out.extend_from_slice(payload);
                out
            }
        }
    }
}

fn decode_data(flags: u8, rest: &[u8]) -> Result<Segment, Error> {
    let (&seq, mut rest) = rest
        .split_first()
        .ok_or_else(|| Error::segment("data segment without a sequence number"))?;

    let mut ack = None;
    if flags & FLAG_ACK != 0 {
        let (&value, after) = rest
            .split_first()
            .ok_or_else(|| Error::segment("data segment truncated before its ack"))?;
        ack = Some(value);
        rest = after;
    }

    let mut total = None;
    if flags & FLAG_BEGIN != 0 {
        let (length, after) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| Error::segment("first data segment truncated before its length"))?;
        total = Some(u16::from_be_bytes(*length));
        rest = after;
    }

    Ok(Segment::Data {
        seq,
        ack,
        total,
        end: flags & FLAG_END != 0,
        payload: rest.to_vec(),
    })
}

/// Checks a segment size and returns it as the one byte the wire carries.
///
/// # Errors
///
/// [`Error::SegmentSize`] outside 20..=244.
pub fn checked_segment_size(size: usize) -> Result<u8, Error> {
    if (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size) {
        u8::try_from(size).map_err(|_| Error::SegmentSize { size })
    } else {
        Err(Error::SegmentSize { size })
    }
}

/// The data path of one side after the connect exchange: splits outgoing messages, reassembles
/// incoming ones, numbers, acknowledges and enforces the window.
#[derive(Debug)]
pub struct Segmenter {
    segment_size: usize,
    window: u8,
    /// Sequence number of the next segment we send.
    next_send: u8,
    /// Our segments sent but not acknowledged.
    in_flight: u8,
    /// Sequence number we expect next from the peer.
    next_receive: u8,
    /// Peer segments received but not acknowledged yet.
    unacked_received: u8,
    /// Messages waiting to be split, each with how much of it was sent.
    outgoing: VecDeque<(Vec<u8>, usize)>,
    /// The message being reassembled and its declared length.
    incoming: Option<(Vec<u8>, usize)>,
    /// Set when a message end arrived, so its acknowledgement goes out without waiting.
    ack_now: bool,
}

impl Segmenter {
    /// Creates the data path for a negotiated segment size and window.
    ///
    /// # Errors
    ///
    /// [`Error::SegmentSize`] outside 20..=244, [`Error::InvalidSegment`] for a window of 0 or
    /// above [`MAX_WINDOW`].
    pub fn new(segment_size: usize, window: u8) -> Result<Self, Error> {
        checked_segment_size(segment_size)?;
        if window == 0 || window > MAX_WINDOW {
            return Err(Error::segment(format!(
                "window {window} is outside 1..={MAX_WINDOW}"
            )));
        }
        Ok(Segmenter {
            segment_size,
            window,
            next_send: 0,
            in_flight: 0,
            next_receive: 0,
            unacked_received: 0,
            outgoing: VecDeque::new(),
            incoming: None,
            ack_now: false,
        })
    }

    /// Returns the negotiated segment size in bytes.
    pub fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// Queues a message to send.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] when the message is empty or larger than
    /// [`MAX_MESSAGE_SIZE`].
    pub fn queue(&mut self, message: Vec<u8>) -> Result<(), Error> {
        if message.is_empty() || message.len() > MAX_MESSAGE_SIZE {
            return Err(Error::InvalidMessage {
                size: message.len(),
                detail: format!("outgoing messages must be 1..={MAX_MESSAGE_SIZE} bytes"),
            });
        }
        self.outgoing.push_back((message, 0));
        Ok(())
    }

    /// Returns whether queued data waits for the window to open.
    pub fn has_pending(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Returns the next segment to transmit, if the window allows one or an ack is due.
    pub fn poll_segment(&mut self) -> Option<Vec<u8>> {
        let ack = self.take_due_ack(!self.outgoing.is_empty() && self.in_flight < self.window);

        if self.in_flight < self.window {
            if let Some(segment) = self.next_data_segment(ack) {
                return Some(segment);
            }
        }
        ack.map(|ack| Segment::Ack(ack).encode())
    }

    /// Returns the ack to send now, if any. Outgoing data carries an ack for every
    /// unacknowledged segment. A standalone ack waits until half the window is used or a
    /// message ended, so acks do not double the segment count.
    fn take_due_ack(&mut self, data_follows: bool) -> Option<u8> {
        if self.unacked_received == 0 {
            return None;
        }
        let half_window = (self.window / 2).max(1);
        if data_follows || self.ack_now || self.unacked_received >= half_window {
            self.unacked_received = 0;
            self.ack_now = false;
            Some(self.next_receive.wrapping_sub(1))
        } else {
            None
        }
    }

    fn next_data_segment(&mut self, ack: Option<u8>) -> Option<Vec<u8>> {
        let (message, sent) = self.outgoing.front_mut()?;
        let begin = *sent == 0;
        let header = 2 + usize::from(ack.is_some()) + if begin { 2 } else { 0 };
        let room = self.segment_size.saturating_sub(header);
        let end_at = (*sent + room).min(message.len());
        let payload = message.get(*sent..end_at)?.to_vec();
        let total = if begin {
            u16::try_from(message.len()).ok()
        } else {
            None
        };
        *sent = end_at;
        let end = end_at == message.len();
        if end {
            self.outgoing.pop_front();
        }

        let segment = Segment::Data {
            seq: self.next_send,
            ack,
            total,
            end,
            payload,
        };
        self.next_send = self.next_send.wrapping_add(1);
        self.in_flight += 1;
        Some(segment.encode())
    }

    /// Processes one data or ack segment from the peer and returns a message once its last
    /// segment arrived.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfOrder`] for a replayed, reordered or skipped segment,
    /// [`Error::InvalidAck`] for an ack of nothing in flight, [`Error::InvalidMessage`] for a
    /// message that exceeds [`MAX_MESSAGE_SIZE`] or whose parts do not match its length, and
    /// [`Error::Unexpected`] for a segment that is not data or an ack.
    pub fn receive(&mut self, segment: Segment) -> Result<Option<Vec<u8>>, Error> {
        match segment {
            Segment::Ack(ack) => {
                self.accept_ack(ack)?;
                Ok(None)
            }
            Segment::Data {
                seq,
                ack,
                total,
                end,
                payload,
            } => {
                if seq != self.next_receive {
                    return Err(Error::OutOfOrder {
                        expected: self.next_receive,
                        got: seq,
                    });
                }
                if let Some(ack) = ack {
                    self.accept_ack(ack)?;
                }
                if self.unacked_received >= self.window {
                    return Err(Error::InvalidMessage {
                        size: payload.len(),
                        detail: format!("peer sent more than the window of {}", self.window),
                    });
                }
                self.next_receive = self.next_receive.wrapping_add(1);
                self.unacked_received += 1;
                self.reassemble(total, end, payload)
            }
            other => Err(Error::unexpected(format!(
                "{} segment on an open link",
                segment_name(&other)
            ))),
        }
    }

    fn accept_ack(&mut self, ack: u8) -> Result<(), Error> {
        // The oldest unacknowledged sequence number; an ack must cover 1..=in_flight of them.
        let oldest = self.next_send.wrapping_sub(self.in_flight);
        let covered = ack.wrapping_sub(oldest).wrapping_add(1);
        if covered == 0 || covered > self.in_flight {
            return Err(Error::InvalidAck { ack });
        }
        self.in_flight -= covered;
        Ok(())
    }

    fn reassemble(
        &mut self,
        total: Option<u16>,
        end: bool,
        payload: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, Error> {
        let (mut buffer, expected) = match (self.incoming.take(), total) {
            (None, Some(total)) => {
                let expected = usize::from(total);
                if expected == 0 || expected > MAX_MESSAGE_SIZE {
                    return Err(Error::InvalidMessage {
                        size: expected,
                        detail: format!("declared length must be 1..={MAX_MESSAGE_SIZE} bytes"),
                    });
                }
                (Vec::with_capacity(expected), expected)
            }
            (None, None) => {
                return Err(Error::segment(
                    "continuation segment without a first segment",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(Error::segment(
                    "first segment while a message is still incomplete",
                ))
            }
            (Some(partial), None) => partial,
        };

        buffer.extend_from_slice(&payload);
        if buffer.len() > expected {
            return Err(Error::InvalidMessage {
                size: buffer.len(),
                detail: format!("longer than its declared {expected} bytes"),
            });
        }
        if !end {
            self.incoming = Some((buffer, expected));
            return Ok(None);
        }
        if buffer.len() != expected {
            return Err(Error::InvalidMessage {
                size: buffer.len(),
                detail: format!("ended before its declared {expected} bytes (truncated)"),
            });
        }
        self.ack_now = true;
        Ok(Some(buffer))
    }
}

/// Returns a short name of a segment kind for messages.
pub(crate) fn segment_name(segment: &Segment) -> &'static str {
    match segment {
        Segment::Connect { .. } => "connect request",
        Segment::Accept { .. } => "connect accept",
        Segment::Refuse(_) => "refusal",
        Segment::Close => "close",
        Segment::Scan => "scan request",
        Segment::Advertisement(_) => "advertisement",
        Segment::Data { .. } => "data",
        Segment::Ack(_) => "ack",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pump(from: &mut Segmenter, to: &mut Segmenter) -> Vec<Vec<u8>> {
        let mut messages = Vec::new();
        loop {
            let mut moved = false;
            while let Some(bytes) = from.poll_segment() {
                moved = true;
                assert!(bytes.len() <= from.segment_size());
                if let Some(message) = to.receive(Segment::decode(&bytes).unwrap()).unwrap() {
                    messages.push(message);
                }
            }
            while let Some(bytes) = to.poll_segment() {
                moved = true;
                from.receive(Segment::decode(&bytes).unwrap()).unwrap();
            }
            if !moved {
                return messages;
            }
        }
    }

    #[test]
    fn message_survives_smallest_segments() {
        let mut a = Segmenter::new(20, 4).unwrap();
        let mut b = Segmenter::new(20, 4).unwrap();
        let message: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        a.queue(message.clone()).unwrap();
        assert_eq!(pump(&mut a, &mut b), vec![message]);
    }

    #[test]
    fn sender_stops_at_window() {
        let mut a = Segmenter::new(20, 3).unwrap();
        a.queue(vec![7; 1000]).unwrap();
        let sent = std::iter::from_fn(|| a.poll_segment()).count();
        assert_eq!(sent, 3);
    }

    #[test]
    fn replayed_segment_is_rejected() {
        let mut a = Segmenter::new(40, 4).unwrap();
        let mut b = Segmenter::new(40, 4).unwrap();
        a.queue(vec![1; 100]).unwrap();
        let first = a.poll_segment().unwrap();
        b.receive(Segment::decode(&first).unwrap()).unwrap();
        let error = b.receive(Segment::decode(&first).unwrap()).unwrap_err();
        assert!(matches!(
            error,
            Error::OutOfOrder {
                expected: 1,
                got: 0
            }
        ));
    }

    #[test]
    fn truncated_message_is_rejected() {
        let mut b = Segmenter::new(40, 4).unwrap();
        let forged = Segment::Data {
            seq: 0,
            ack: None,
            total: Some(50),
            end: true,
            payload: vec![0; 10],
        };
        let error = b.receive(forged).unwrap_err();
        assert!(matches!(error, Error::InvalidMessage { size: 10, .. }));
    }

    #[test]
    fn oversized_declared_length_is_rejected() {
        let mut b = Segmenter::new(40, 4).unwrap();
        let forged = Segment::Data {
            seq: 0,
            ack: None,
            total: Some(u16::MAX),
            end: false,
            payload: vec![0; 10],
        };
        assert!(matches!(
            b.receive(forged),
            Err(Error::InvalidMessage { .. })
        ));
    }

    #[test]
    fn ack_of_nothing_in_flight_is_rejected() {
        let mut a = Segmenter::new(40, 4).unwrap();
        assert!(matches!(
            a.receive(Segment::Ack(0)),
            Err(Error::InvalidAck { ack: 0 })
        ));
    }

    #[test]
    fn truncated_headers_are_rejected() {
        for bytes in [
            &[][..],
            &[0x21][..],
            &[0x25, 0][..],
            &[0x21, 0, 1][..],
            &[0x10, 1][..],
        ] {
            assert!(Segment::decode(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn segment_size_outside_range_is_rejected() {
        assert!(Segmenter::new(19, 4).is_err());
        assert!(Segmenter::new(245, 4).is_err());
        assert!(Segmenter::new(244, 4).is_ok());
    }
}
