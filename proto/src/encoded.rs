//! `ListAppointmentsResponse`, written by hand rather than generated, so that a server can
//! send visits it encoded once (the health portal's front page lists the same visits over
//! and over). On the wire it is the message of `appointments.proto`, field for field.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::appointments::v1::Appointment;

/// An [`Appointment`] encoded once, sent as it is in every answer that lists it.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct EncodedAppointment(Bytes);

impl EncodedAppointment {
    /// Encodes each of `appointments` into one allocation that their encodings share: a
    /// cache holding many small encodings, each its own allocation among the freed
    /// temporaries that made it, held about four times their size in memory.
    pub fn each_of(appointments: &[Appointment]) -> Vec<Self> {
        let total = appointments.iter().map(Message::encoded_len).sum();
        let mut buffer = BytesMut::with_capacity(total);
        let mut spans = Vec::with_capacity(appointments.len());
        for appointment in appointments {
            let start = buffer.len();
            appointment
                .encode(&mut buffer)
                .expect("the buffer holds every encoding it was sized for");
            spans.push(start..buffer.len());
        }
        let shared = buffer.freeze();
        spans
            .into_iter()
            .map(|span| Self(shared.slice(span)))
            .collect()
    }

    /// The appointment again, as a client would decode it.
    pub fn decode(&self) -> Result<Appointment, DecodeError> {
        Appointment::decode(self.0.clone())
    }

    /// The encoding's length in bytes, for a cache that bounds its memory.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the encoding is empty (an appointment with every field at its default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `homecare.appointments.v1.ListAppointmentsResponse`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct ListAppointmentsResponse {
    /// The page's visits. A decoded response holds every visit here.
    pub appointments: Vec<Appointment>,
    /// Visits of the page already encoded, sent before those in `appointments`. Decoding
    /// never fills it.
    pub encoded_appointments: Vec<EncodedAppointment>,
    /// Empty when there are no more pages.
    pub next_page_token: String,
}

const APPOINTMENTS: u32 = 1;
const NEXT_PAGE_TOKEN: u32 = 2;

impl Message for ListAppointmentsResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for encoded in &self.encoded_appointments {
            // An embedded message is written exactly as a bytes field of its encoding.
            encoding::bytes::encode(APPOINTMENTS, &encoded.0, buf);
        }
        for appointment in &self.appointments {
            encoding::message::encode(APPOINTMENTS, appointment, buf);
        }
        if !self.next_page_token.is_empty() {
            encoding::string::encode(NEXT_PAGE_TOKEN, &self.next_page_token, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            APPOINTMENTS => {
                encoding::message::merge_repeated(wire_type, &mut self.appointments, buf, ctx)
            }
            NEXT_PAGE_TOKEN => {
                encoding::string::merge(wire_type, &mut self.next_page_token, buf, ctx)
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let encoded: usize = self
            .encoded_appointments
            .iter()
            .map(|encoded| encoding::bytes::encoded_len(APPOINTMENTS, &encoded.0))
            .sum();
        let token = if self.next_page_token.is_empty() {
            0
        } else {
            encoding::string::encoded_len(NEXT_PAGE_TOKEN, &self.next_page_token)
        };
        encoded + encoding::message::encoded_len_repeated(APPOINTMENTS, &self.appointments) + token
    }

    fn clear(&mut self) {
        self.appointments.clear();
        self.encoded_appointments.clear();
        self.next_page_token.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appointments::v1::AppointmentStatus;

    fn visit(id: &str) -> Appointment {
        Appointment {
            id: id.into(),
            patient_id: "patient".into(),
            status: AppointmentStatus::Planned.into(),
            version: 3,
            window_start: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    /// The message `appointments.proto` generates, as any other client decodes it.
    #[derive(Clone, PartialEq, prost::Message)]
    struct AsGenerated {
        #[prost(message, repeated, tag = "1")]
        appointments: Vec<Appointment>,
        #[prost(string, tag = "2")]
        next_page_token: String,
    }

    #[test]
    fn encoded_visits_are_on_the_wire_what_the_visits_are() {
        let (first, second) = (visit("first"), visit("second"));
        let sent = ListAppointmentsResponse {
            appointments: vec![],
            encoded_appointments: EncodedAppointment::each_of(&[first.clone(), second.clone()]),
            next_page_token: "next".into(),
        };
        let bytes = sent.encode_to_vec();
        assert_eq!(bytes.len(), sent.encoded_len());

        let generated = AsGenerated {
            appointments: vec![first.clone(), second.clone()],
            next_page_token: "next".into(),
        };
        assert_eq!(bytes, generated.encode_to_vec());

        assert_eq!(sent.encoded_appointments[1].decode().unwrap(), second);
        let decoded = ListAppointmentsResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.appointments, vec![first, second]);
        assert!(decoded.encoded_appointments.is_empty());
        assert_eq!(decoded.next_page_token, "next");
    }

    #[test]
    fn an_empty_page_is_empty_on_the_wire() {
        let sent = ListAppointmentsResponse::default();
        assert!(sent.encode_to_vec().is_empty());
        assert_eq!(sent.encoded_len(), 0);
    }
}
