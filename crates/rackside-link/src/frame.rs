//! Frames of the simulated radio: one segment with the sender's device id and distance.
//!
//! A real radio estimates the distance only from signal strength; the simulator carries it in
//! the frame so tests and demos can place a device anywhere.

use crate::segment::MAX_SEGMENT_SIZE;
use crate::Error;

const HEADER_LEN: usize = 6;
/// The largest encoded frame: the header and the largest segment.
pub const MAX_FRAME_SIZE: usize = HEADER_LEN + MAX_SEGMENT_SIZE;

/// One radio frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The device the frame comes from or goes to.
    pub device: u32,
    /// The device's distance from the server in centimetres (0 on frames the BMC sends).
    pub distance_cm: u16,
    /// The encoded segment.
    pub segment: Vec<u8>,
}

impl Frame {
    /// Encodes the frame: device id as u32 and distance as u16, both big-endian, then the
    /// segment.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.segment.len());
        out.extend_from_slice(&self.device.to_be_bytes());
        out.extend_from_slice(&self.distance_cm.to_be_bytes());
        out.extend_from_slice(&self.segment);
        out
    }

    /// Decodes a frame.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSegment`] when the frame is shorter than its header, has no segment,
    /// or is longer than [`MAX_FRAME_SIZE`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_FRAME_SIZE {
            return Err(Error::segment(format!(
                "frame of {} bytes exceeds {MAX_FRAME_SIZE}",
                bytes.len()
            )));
        }
        let Some((device, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(Error::segment("frame shorter than its header"));
        };
        let Some((distance, segment)) = rest.split_first_chunk::<2>() else {
            return Err(Error::segment("frame shorter than its header"));
        };
        if segment.is_empty() {
            return Err(Error::segment("frame without a segment"));
        }
        Ok(Frame {
            device: u32::from_be_bytes(*device),
            distance_cm: u16::from_be_bytes(*distance),
            segment: segment.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips() {
        let frame = Frame {
            device: 7,
            distance_cm: 150,
            segment: vec![0x13],
        };
        assert_eq!(Frame::decode(&frame.encode()).unwrap(), frame);
    }

    #[test]
    fn short_and_long_frames_are_rejected() {
        assert!(Frame::decode(&[0; 6]).is_err());
        assert!(Frame::decode(&[0; 3]).is_err());
        assert!(Frame::decode(&vec![0; MAX_FRAME_SIZE + 1]).is_err());
    }
}
