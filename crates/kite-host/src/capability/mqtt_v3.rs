//! Spin 4's `spin:mqtt@3.0.0` (async functions), for components on the concurrent engine:
//! the same brokers, outbound rules, connection caps and payload bounds as
//! `fermyon:spin/mqtt@2.0.0`, whose error type (the same in both WITs) is converted here.

use super::mqtt::{open, publish, publisher, view, Error as V2Error, Mqtt, MqttConnection};
use super::outbound_policy::{open_outside_state, ClientUse};
use crate::held_bytes::hold;
use crate::InstanceState;
use rumqttc::QoS;
use wasmtime::component::{Accessor, Linker, Resource};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "kite:host/mqtt-v3",
        with: {
            "spin:mqtt/mqtt.connection": crate::capability::mqtt::MqttConnection,
        },
    });
}

use bindings::spin::mqtt::mqtt::{self as spin_mqtt, Error, Qos};

pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> anyhow::Result<()> {
    spin_mqtt::add_to_linker::<_, Mqtt>(linker, view)?;
    Ok(())
}

fn error(e: V2Error) -> Error {
    match e {
        V2Error::InvalidAddress => Error::InvalidAddress,
        V2Error::TooManyConnections => Error::TooManyConnections,
        V2Error::ConnectionFailed(why) => Error::ConnectionFailed(why),
        V2Error::Other(why) => Error::Other(why),
    }
}

impl spin_mqtt::Host for super::mqtt::MqttView<'_> {}

impl spin_mqtt::HostConnection for super::mqtt::MqttView<'_> {
    fn drop(&mut self, connection: Resource<MqttConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl spin_mqtt::HostConnectionWithStore<InstanceState> for Mqtt {
    async fn open(
        accessor: &Accessor<InstanceState, Self>,
        address: String,
        username: String,
        password: String,
        keep_alive_interval_in_secs: u64,
    ) -> Result<Resource<MqttConnection>, Error> {
        let connect = |client: ClientUse| async move {
            open(
                &client,
                &address,
                username,
                password,
                keep_alive_interval_in_secs,
            )
            .await
            .map_err(error)
        };
        open_outside_state(accessor, connect, || Error::TooManyConnections).await
    }

    async fn publish(
        accessor: &Accessor<InstanceState, Self>,
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
        let arguments = topic.len() + payload.len();
        let _held =
            hold(accessor, arguments, arguments).map_err(|e| Error::Other(e.to_string()))?;
        let publisher = accessor
            .with(|mut access| publisher(access.get().table, &connection))
            .map_err(error)?;
        publish(publisher, topic, payload, level)
            .await
            .map_err(error)
    }
}
