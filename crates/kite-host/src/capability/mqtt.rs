//! Outbound MQTT through `fermyon:spin/mqtt`: a guest publishes only to brokers its
//! `allowed_outbound_hosts` names (`mqtt://host[:port]`). Kite resolves the name and checks
//! the blocked networks itself, then has the client connect to the checked address.

use super::outbound_connect::{checked_addresses, ConnectionPermits, Failure};
use super::outbound_policy::{ClientUse, MAX_ADDRESS_BYTES};
use crate::InstanceState;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/mqtt",
        with: {
            "fermyon:spin/mqtt.connection": super::MqttConnection,
        },
        imports: {
            "fermyon:spin/mqtt.[static]connection.open": async,
            "fermyon:spin/mqtt.[method]connection.publish": async,
        },
    });
}

pub use bindings::fermyon::spin::mqtt::Error;
use bindings::fermyon::spin::mqtt::{self as spin_mqtt, Qos};

/// The client's name in log lines.
const CLIENT: &str = "MQTT";

const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message a guest may publish (and the largest packet read from the broker).
const MAX_PAYLOAD_BYTES: usize = 8 << 20;
const MAX_INCOMING_PACKET_BYTES: usize = 64 << 10;

/// A connection a guest opened: the client, and what its event loop reports.
pub struct MqttConnection {
    client: AsyncClient,
    events: Arc<Mutex<mpsc::UnboundedReceiver<Result<Event, String>>>>,
    driver: tokio::task::JoinHandle<()>,
    _permits: ConnectionPermits,
}

impl Drop for MqttConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub(crate) struct MqttView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) mqtt: &'a mut ClientUse,
}

pub(crate) struct Mqtt;

impl HasData for Mqtt {
    type Data<'a> = MqttView<'a>;
}

pub(crate) fn view(state: &mut InstanceState) -> MqttView<'_> {
    MqttView {
        table: &mut state.table,
        mqtt: &mut state.clients,
    }
}

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_mqtt::add_to_linker::<_, Mqtt>(linker, view)?;
    Ok(())
}

/// `mqtt://host[:port]?client_id=...`: the host, the port and the client id.
fn parse_address(address: &str) -> Option<(String, u16, String)> {
    let url = url::Url::parse(address).ok()?;
    if url.scheme() != "mqtt" {
        return None;
    }
    let host = url.host_str()?.to_string();
    let client_id = url
        .query_pairs()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Some((host, url.port().unwrap_or(1883), client_id))
}

/// Connects to the broker at `address` if a rule of `client` allows it; refusals are logged
/// with the rule to add.
pub(crate) async fn open(
    client: &ClientUse,
    address: &str,
    username: String,
    password: String,
    keep_alive_seconds: u64,
) -> Result<MqttConnection, Error> {
    if [address, &username, &password]
        .iter()
        .any(|text| text.len() > MAX_ADDRESS_BYTES)
    {
        return Err(Error::ConnectionFailed(format!(
            "the address, user name and password are each at most {MAX_ADDRESS_BYTES} bytes"
        )));
    }
    let Some((host, port, client_id)) = parse_address(address) else {
        client.refused(
            CLIENT,
            address,
            "only mqtt:// addresses are supported (no TLS yet)",
        );
        return Err(Error::InvalidAddress);
    };
    let shown = format!("mqtt://{host}:{port}");
    let refuse = |reason: &str| {
        client.refused(CLIENT, &shown, reason);
        Error::ConnectionFailed(format!("address {shown} is not permitted"))
    };
    if let Err(reason) = client.policy.check_address("mqtt", &host, port) {
        return Err(refuse(&reason));
    }
    // A place in the caps before resolving: calls waiting on names count too.
    let Some(permits) = client.reserve(CLIENT, &shown) else {
        return Err(Error::TooManyConnections);
    };
    let addresses =
        match checked_addresses(&host, port, &client.policy.blocked, RESOLVE_TIMEOUT).await {
            Ok(addresses) => addresses,
            Err(Failure::Refused { reason, .. }) => return Err(refuse(&reason)),
            Err(Failure::Failed(code)) => return Err(Error::ConnectionFailed(code.to_string())),
        };
    // The client connects to the address checked here, not to the name again.
    let mut options = MqttOptions::new(client_id, addresses[0].ip().to_string(), port);
    options
        .set_keep_alive(Duration::from_secs(
            keep_alive_seconds.min(u64::from(u16::MAX)),
        ))
        .set_max_packet_size(MAX_INCOMING_PACKET_BYTES, MAX_PAYLOAD_BYTES);
    if !username.is_empty() || !password.is_empty() {
        options.set_credentials(username, password);
    }
    let (client, mut event_loop) = AsyncClient::new(options, 16);
    let (sender, events) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            let event = event_loop.poll().await.map_err(|e| e.to_string());
            let failed = event.is_err();
            if sender.send(event).is_err() || failed {
                break;
            }
        }
    });
    Ok(MqttConnection {
        client,
        events: Arc::new(Mutex::new(events)),
        driver,
        _permits: permits,
    })
}

/// The client and event queue behind a connection, to publish without holding the table.
pub(crate) fn publisher(
    table: &ResourceTable,
    connection: &Resource<MqttConnection>,
) -> Result<(AsyncClient, Events), Error> {
    let connection = table
        .get(connection)
        .map_err(|e| Error::Other(e.to_string()))?;
    Ok((connection.client.clone(), connection.events.clone()))
}

/// What a connection's event loop reports.
pub(crate) type Events = Arc<Mutex<mpsc::UnboundedReceiver<Result<Event, String>>>>;

/// Publishes and waits as long as the quality of service asks: until the message is sent
/// (at most once), acknowledged (at least once) or completed (exactly once).
pub(crate) async fn publish(
    (client, events): (AsyncClient, Events),
    topic: String,
    payload: Vec<u8>,
    level: QoS,
) -> Result<(), Error> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::Other(format!(
            "the payload is larger than {MAX_PAYLOAD_BYTES} bytes"
        )));
    }
    let mut events = events.lock().await;
    client
        .publish(topic, level, false, payload)
        .await
        .map_err(|e| Error::ConnectionFailed(e.to_string()))?;
    let mut sent = None;
    loop {
        let event = match events.recv().await {
            None => return Err(Error::ConnectionFailed("the connection closed".into())),
            Some(Err(e)) => return Err(Error::ConnectionFailed(e)),
            Some(Ok(event)) => event,
        };
        match event {
            Event::Outgoing(Outgoing::Publish(id)) if sent.is_none() => {
                if level == QoS::AtMostOnce {
                    return Ok(());
                }
                sent = Some(id);
            }
            Event::Incoming(Packet::ConnAck(ack))
                if ack.code != rumqttc::ConnectReturnCode::Success =>
            {
                return Err(Error::ConnectionFailed(format!(
                    "the broker refused the connection: {:?}",
                    ack.code
                )))
            }
            Event::Incoming(Packet::PubAck(ack))
                if level == QoS::AtLeastOnce && sent == Some(ack.pkid) =>
            {
                return Ok(())
            }
            Event::Incoming(Packet::PubComp(done))
                if level == QoS::ExactlyOnce && sent == Some(done.pkid) =>
            {
                return Ok(())
            }
            _ => {}
        }
    }
}

impl spin_mqtt::Host for MqttView<'_> {}

impl spin_mqtt::HostConnection for MqttView<'_> {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Result<Resource<MqttConnection>, Error> {
        let connection = open(
            self.mqtt,
            &address,
            username,
            password,
            keep_alive_interval_in_secs,
        )
        .await?;
        self.table
            .push(connection)
            .map_err(|_| Error::TooManyConnections)
    }

    async fn publish(
        &mut self,
        connection: Resource<MqttConnection>,
        topic: String,
        payload: Vec<u8>,
        qos: Qos,
    ) -> Result<(), Error> {
        let level = match qos {
            Qos::AtMostOnce => QoS::AtMostOnce,
            Qos::AtLeastOnce => QoS::AtLeastOnce,
            Qos::ExactlyOnce => QoS::ExactlyOnce,
        };
        publish(publisher(self.table, &connection)?, topic, payload, level).await
    }

    fn drop(&mut self, connection: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}
