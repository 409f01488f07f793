//! The in-memory radio with fault injection, for tests in one process.
//!
//! [`Radio`] moves frames synchronously between one [`LinkServer`] and any number of
//! [`LinkClient`]s and applies a [`FaultPlan`]. [`pipe_pair`] gives the same radio to the
//! async drivers.

use std::collections::VecDeque;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::{ClientOutput, Error, Frame, LinkClient, LinkServer};

/// The direction of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a device to the BMC.
    ToBmc,
    /// From the BMC to a device.
    ToDevice,
}

/// One fault applied to one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The frame is lost.
    Drop,
    /// The frame arrives twice.
    Duplicate,
    /// The frame arrives after the next one in the same direction.
    Reorder,
    /// The frame's segment is cut to this many bytes.
    Truncate(usize),
    /// One byte of the frame's segment is flipped at this index (modulo its length).
    Corrupt(usize),
    /// The frame arrives from this distance in centimetres instead.
    Distance(u16),
}

/// Faults keyed by direction and the index of the frame in that direction, counted from 0.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    rules: Vec<(Direction, usize, Fault)>,
}

impl FaultPlan {
    /// Adds a fault for the `index`th frame in `direction`.
    pub fn with(mut self, direction: Direction, index: usize, fault: Fault) -> Self {
        self.rules.push((direction, index, fault));
        self
    }

    /// Applies the faults of one frame and returns what arrives, in order. A reordered frame
    /// is held in `held` and released after the next frame.
    fn apply(
        &self,
        direction: Direction,
        index: usize,
        mut frame: Frame,
        held: &mut Option<Frame>,
    ) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut hold = false;
        let mut duplicate = false;
        for (_, _, fault) in self
            .rules
            .iter()
            .filter(|(d, i, _)| *d == direction && *i == index)
        {
            match fault {
                Fault::Drop => return held.take().into_iter().collect(),
                Fault::Duplicate => duplicate = true,
                Fault::Reorder => hold = true,
                Fault::Truncate(length) => frame.segment.truncate(*length),
                Fault::Corrupt(at) => {
                    let length = frame.segment.len();
                    if let Some(byte) = frame.segment.get_mut(at % length.max(1)) {
                        *byte ^= 0x5a;
                    }
                }
                Fault::Distance(distance) => frame.distance_cm = *distance,
            }
        }
        if hold {
            *held = Some(frame);
            return out;
        }
        if duplicate {
            out.push(frame.clone());
        }
        out.push(frame);
        out.extend(held.take());
        out
    }
}

/// A synchronous radio between one BMC and several devices.
#[derive(Debug, Default)]
pub struct Radio {
    plan: FaultPlan,
    sent_to_bmc: usize,
    sent_to_device: usize,
    held_to_bmc: Option<Frame>,
    held_to_device: Option<Frame>,
    /// Bytes moved, both directions, including segment headers.
    pub bytes: usize,
    /// Frames moved, both directions.
    pub frames: usize,
}

impl Radio {
    /// Creates a radio with a fault plan.
    pub fn new(plan: FaultPlan) -> Self {
        Radio {
            plan,
            ..Radio::default()
        }
    }

    /// Moves frames until no side has anything to send, and returns every output and error
    /// each client produced, by client index. After a client error the client is closed.
    pub fn pump(
        &mut self,
        server: &mut LinkServer,
        clients: &mut [&mut LinkClient],
        now: Instant,
    ) -> Vec<Vec<Result<ClientOutput, Error>>> {
        let mut results: Vec<Vec<Result<ClientOutput, Error>>> =
            clients.iter().map(|_| Vec::new()).collect();
        for _round in 0..100_000 {
            let mut moved = false;
            for client in clients.iter_mut() {
                while let Some(frame) = client.poll_frame() {
                    moved = true;
                    let index = self.sent_to_bmc;
                    self.sent_to_bmc += 1;
                    self.count(&frame);
                    for arrived in
                        self.plan
                            .apply(Direction::ToBmc, index, frame, &mut self.held_to_bmc)
                    {
                        server.receive_frame(&arrived, now);
                    }
                }
            }
            let mut to_devices = VecDeque::new();
            while let Some(frame) = server.poll_frame() {
                moved = true;
                let index = self.sent_to_device;
                self.sent_to_device += 1;
                self.count(&frame);
                to_devices.extend(self.plan.apply(
                    Direction::ToDevice,
                    index,
                    frame,
                    &mut self.held_to_device,
                ));
            }
            for frame in to_devices {
                for (client, out) in clients.iter_mut().zip(results.iter_mut()) {
                    if client.settings().device != frame.device || client.is_closed() {
                        continue;
                    }
                    match client.receive_frame(&frame) {
                        Ok(outputs) => out.extend(outputs.into_iter().map(Ok)),
                        Err(error) => out.push(Err(error)),
                    }
                }
            }
            if !moved {
                break;
            }
        }
        results
    }

    fn count(&mut self, frame: &Frame) {
        self.frames += 1;
        self.bytes += frame.segment.len();
    }
}

/// One end of an async frame pipe, which the drivers in [`crate::service`] and
/// [`ClientSession`](crate::ClientSession) read and write.
#[derive(Debug)]
pub struct FramePipe {
    /// Frames to the other end.
    pub tx: mpsc::Sender<Frame>,
    /// Frames from the other end.
    pub rx: mpsc::Receiver<Frame>,
}

/// Creates two connected pipe ends whose frames pass through the fault plan. Spawns a task
/// on the current tokio runtime.
pub fn pipe_pair(plan: FaultPlan) -> (FramePipe, FramePipe) {
    let (device_tx, mut from_device) = mpsc::channel::<Frame>(64);
    let (to_device, device_rx) = mpsc::channel::<Frame>(64);
    let (bmc_tx, mut from_bmc) = mpsc::channel::<Frame>(64);
    let (to_bmc, bmc_rx) = mpsc::channel::<Frame>(64);

    tokio::spawn(async move {
        let (mut up, mut down) = (0usize, 0usize);
        let (mut held_up, mut held_down) = (None, None);
        loop {
            tokio::select! {
                frame = from_device.recv() => {
                    let Some(frame) = frame else { break };
                    for arrived in plan.apply(Direction::ToBmc, up, frame, &mut held_up) {
                        if to_bmc.send(arrived).await.is_err() { return; }
                    }
                    up += 1;
                }
                frame = from_bmc.recv() => {
                    let Some(frame) = frame else { break };
                    for arrived in plan.apply(Direction::ToDevice, down, frame, &mut held_down) {
                        if to_device.send(arrived).await.is_err() { return; }
                    }
                    down += 1;
                }
            }
        }
    });

    (
        FramePipe {
            tx: device_tx,
            rx: device_rx,
        },
        FramePipe {
            tx: bmc_tx,
            rx: bmc_rx,
        },
    )
}
