//! The link over BLE GATT through BlueZ: one service with a write characteristic (device to
//! BMC) and an indicate characteristic (BMC to device), each value one segment.
//!
//! Over a real radio the device id comes from the peer's Bluetooth address and the range is
//! physical, so frames carry distance 0 and the BMC's range check passes them.
//! NOTE: tested against BlueZoo (a user-space BlueZ mock, `scripts/bluezoo-test.sh`) but never
//! against a radio. The indicate side serves the last subscribed device only, which matches the
//! link's one-device rule.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use bluer::gatt::local::{
    Application, ApplicationHandle, Characteristic, CharacteristicNotifier, CharacteristicNotify,
    CharacteristicNotifyMethod, CharacteristicWrite, CharacteristicWriteMethod, Service,
};
use bluer::{Adapter, Address};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, Mutex};
use uuid::Uuid;

use crate::memory::FramePipe;
use crate::segment::MAX_SEGMENT_SIZE;
use crate::service::LinkService;
use crate::{Error, Frame};

/// The link's GATT service, a random UUID chosen for rackside.
pub const SERVICE_UUID: Uuid = Uuid::from_u128(0x6d1f_7a3e_52b4_4c1a_9a51_3b0e_55e7_a001);
/// The characteristic the device writes segments to.
pub const WRITE_UUID: Uuid = Uuid::from_u128(0x6d1f_7a3e_52b4_4c1a_9a51_3b0e_55e7_a002);
/// The characteristic the BMC indicates segments on.
pub const INDICATE_UUID: Uuid = Uuid::from_u128(0x6d1f_7a3e_52b4_4c1a_9a51_3b0e_55e7_a003);

fn ble_error(what: &str) -> impl FnOnce(bluer::Error) -> Error + '_ {
    move |error| Error::Io {
        what: what.to_owned(),
        source: std::io::Error::other(error.to_string()),
    }
}

/// Derives a device id from the low four bytes of a Bluetooth address.
fn device_id(address: Address) -> u32 {
    let [_, _, a, b, c, d] = address.0;
    u32::from_be_bytes([a, b, c, d])
}

/// Serves the link's GATT application on `adapter` and attaches each writing device to
/// `service`. Dropping the returned handle removes the application.
///
/// # Errors
///
/// [`Error::Io`] when BlueZ rejects the application.
pub async fn serve(adapter: &Adapter, service: LinkService) -> Result<ApplicationHandle, Error> {
    let notifier: Arc<Mutex<Option<CharacteristicNotifier>>> = Arc::new(Mutex::new(None));
    let devices: Arc<Mutex<HashMap<u32, mpsc::Sender<Frame>>>> =
        Arc::new(Mutex::new(HashMap::new()));

    let write_notifier = notifier.clone();
    let write = CharacteristicWrite {
        write: true,
        write_without_response: false,
        method: CharacteristicWriteMethod::Fun(Box::new(move |value, request| {
            let service = service.clone();
            let devices = devices.clone();
            let notifier = write_notifier.clone();
            async move {
                if value.is_empty() || value.len() > MAX_SEGMENT_SIZE {
                    return Err(bluer::gatt::local::ReqError::InvalidValueLength);
                }
                let device = device_id(request.device_address);
                let frame = Frame {
                    device,
                    distance_cm: 0,
                    segment: value,
                };
                let mut devices = devices.lock().await;
                if let Entry::Vacant(vacant) = devices.entry(device) {
                    let (to_service, from_device) = mpsc::channel(64);
                    let (to_device, mut from_service) = mpsc::channel::<Frame>(64);
                    let pipe = FramePipe {
                        tx: to_device,
                        rx: from_device,
                    };
                    if service.attach(pipe).await.is_err() {
                        return Err(bluer::gatt::local::ReqError::Failed);
                    }
                    let notifier = notifier.clone();
                    tokio::spawn(async move {
                        while let Some(frame) = from_service.recv().await {
                            let mut slot = notifier.lock().await;
                            let Some(active) = slot.as_mut() else {
                                tracing::debug!(device, "segment dropped: no device subscribed");
                                continue;
                            };
                            if let Err(error) = active.notify(frame.segment).await {
                                tracing::debug!(%error, device, "indication failed");
                                *slot = None;
                            }
                        }
                    });
                    vacant.insert(to_service);
                }
                if let Some(sender) = devices.get(&device) {
                    if sender.send(frame).await.is_err() {
                        devices.remove(&device);
                        return Err(bluer::gatt::local::ReqError::Failed);
                    }
                }
                Ok(())
            }
            .boxed()
        })),
        ..Default::default()
    };

    let indicate = CharacteristicNotify {
        indicate: true,
        method: CharacteristicNotifyMethod::Fun(Box::new(move |subscriber| {
            let notifier = notifier.clone();
            async move {
                *notifier.lock().await = Some(subscriber);
            }
            .boxed()
        })),
        ..Default::default()
    };

    let application = Application {
        services: vec![Service {
            uuid: SERVICE_UUID,
            primary: true,
            characteristics: vec![
                Characteristic {
                    uuid: WRITE_UUID,
                    write: Some(write),
                    ..Default::default()
                },
                Characteristic {
                    uuid: INDICATE_UUID,
                    notify: Some(indicate),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    adapter
        .serve_gatt_application(application)
        .await
        .map_err(ble_error("serving the link's GATT application"))
}

/// Connects to the BMC at `address`, subscribes to its indications, and returns the device's
/// pipe end. Frames written to the pipe go out as GATT writes of their segment, and incoming
/// segments arrive as frames for `device`, which must be the client's own device id.
///
/// # Errors
///
/// [`Error::Io`] when the device cannot be connected or lacks the link's service.
pub async fn connect(adapter: &Adapter, address: Address, device: u32) -> Result<FramePipe, Error> {
    let remote = adapter
        .device(address)
        .map_err(ble_error("finding the BMC"))?;
    if !remote
        .is_connected()
        .await
        .map_err(ble_error("reading the connection state"))?
    {
        remote
            .connect()
            .await
            .map_err(ble_error("connecting to the BMC"))?;
    }

    let mut write = None;
    let mut indicate = None;
    for service in remote
        .services()
        .await
        .map_err(ble_error("listing GATT services"))?
    {
        if service
            .uuid()
            .await
            .map_err(ble_error("reading a service UUID"))?
            != SERVICE_UUID
        {
            continue;
        }
        for characteristic in service
            .characteristics()
            .await
            .map_err(ble_error("listing characteristics"))?
        {
            match characteristic
                .uuid()
                .await
                .map_err(ble_error("reading a UUID"))?
            {
                uuid if uuid == WRITE_UUID => write = Some(characteristic),
                uuid if uuid == INDICATE_UUID => indicate = Some(characteristic),
                _ => {}
            }
        }
    }
    let (Some(write), Some(indicate)) = (write, indicate) else {
        return Err(Error::Io {
            what: format!("finding the link service on {address}"),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the device has no rackside link service; is it an activated BMC?",
            ),
        });
    };

    let mut indications = Box::pin(
        indicate
            .notify()
            .await
            .map_err(ble_error("subscribing to indications"))?,
    );
    let (to_device, device_rx) = mpsc::channel::<Frame>(64);
    let (device_tx, mut from_device) = mpsc::channel::<Frame>(64);
    tokio::spawn(async move {
        while let Some(segment) = indications.next().await {
            let frame = Frame {
                device,
                distance_cm: 0,
                segment,
            };
            if to_device.send(frame).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(frame) = from_device.recv().await {
            if let Err(error) = write.write(&frame.segment).await {
                tracing::debug!(%error, "GATT write failed");
                return;
            }
        }
    });
    Ok(FramePipe {
        tx: device_tx,
        rx: device_rx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_uses_low_address_bytes() {
        let address = Address([0xaa, 0xbb, 0x01, 0x02, 0x03, 0x04]);
        assert_eq!(device_id(address), 0x0102_0304);
    }
}
