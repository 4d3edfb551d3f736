//! A minimal DIMSE requestor on dicom-ul, for what DCMTK will not send: data sets without
//! a SOP Instance UID, stores on the wrong presentation context, unknown commands,
//! messages cut in the middle. Every response is decoded with `segnode::dimse`, so tests
//! assert on real statuses and message ids.

use std::time::Duration;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::Pdu;
use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::association::{AsyncClientAssociation, Error as UlError};
use dicom_ul::pdu::{PDataValue, PDataValueType, PresentationContextResultReason};
use segnode::dimse::Command;
use tokio::net::TcpStream;

/// Data PDVs are cut to this size (well under any max PDU) so that a data set spans
/// several fragments, as real peers send them.
const FRAGMENT: usize = 16 * 1024;

/// An established association to a node.
pub struct RawScu {
    /// The association (public so tests can misbehave on it).
    pub association: AsyncClientAssociation<TcpStream>,
}

impl RawScu {
    /// Associate as `calling_ae` with `address` ("AE@host:port"), proposing one context per
    /// `(abstract syntax, transfer syntaxes)`.
    pub async fn connect(
        address: &str,
        calling_ae: &str,
        contexts: &[(&str, &[&str])],
    ) -> Result<RawScu, UlError> {
        let mut options = ClientAssociationOptions::new()
            .calling_ae_title(calling_ae.to_string())
            .read_timeout(Duration::from_secs(30))
            .write_timeout(Duration::from_secs(30));
        for (abstract_syntax, syntaxes) in contexts {
            options = options.with_presentation_context(
                abstract_syntax.to_string(),
                syntaxes.iter().map(|s| s.to_string()).collect(),
            );
        }
        let association = options.establish_with_async(address).await?;
        Ok(RawScu { association })
    }

    /// The id of the accepted context for `abstract_syntax` (panics when it was refused).
    pub fn context_id(&self, abstract_syntax: &str) -> u8 {
        self.association
            .presentation_contexts()
            .iter()
            .find(|pc| {
                pc.abstract_syntax == abstract_syntax
                    && pc.reason == PresentationContextResultReason::Acceptance
            })
            .unwrap_or_else(|| panic!("no accepted context for {abstract_syntax}"))
            .id
    }

    /// Send one PDV.
    pub async fn send_pdv(
        &mut self,
        context_id: u8,
        value_type: PDataValueType,
        is_last: bool,
        data: Vec<u8>,
    ) {
        let pdu = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context_id,
                value_type,
                is_last,
                data,
            }],
        };
        self.association.send(&pdu).await.expect("send P-DATA");
    }

    /// Send a command set, then its data set (if any) in fragments.
    pub async fn send_message(&mut self, context_id: u8, command: &[u8], dataset: Option<&[u8]>) {
        self.send_pdv(context_id, PDataValueType::Command, true, command.to_vec())
            .await;
        if let Some(dataset) = dataset {
            let chunks: Vec<&[u8]> = if dataset.is_empty() {
                vec![dataset]
            } else {
                dataset.chunks(FRAGMENT).collect()
            };
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.into_iter().enumerate() {
                self.send_pdv(context_id, PDataValueType::Data, i == last, chunk.to_vec())
                    .await;
            }
        }
    }

    /// Receive one complete command set and decode it.
    pub async fn read_response(&mut self) -> Command {
        let mut bytes = Vec::new();
        loop {
            match self
                .association
                .receive()
                .await
                .expect("receive a response")
            {
                Pdu::PData { data } => {
                    for pdv in data {
                        assert_eq!(
                            pdv.value_type,
                            PDataValueType::Command,
                            "responses carry no data set"
                        );
                        bytes.extend_from_slice(&pdv.data);
                        if pdv.is_last {
                            return Command::decode(&bytes).expect("a decodable response");
                        }
                    }
                }
                other => panic!("expected a response, got {}", other.short_description()),
            }
        }
    }

    /// C-STORE `dataset` (already encoded in the context's transfer syntax) and return the response.
    pub async fn c_store(
        &mut self,
        context_id: u8,
        message_id: u16,
        sop_class_uid: &str,
        sop_instance_uid: &str,
        dataset: &[u8],
    ) -> Command {
        let command = Command::StoreRq {
            message_id,
            sop_class_uid: sop_class_uid.into(),
            sop_instance_uid: sop_instance_uid.into(),
            priority: 0,
            move_originator: None,
        };
        self.send_message(context_id, &command.encode(), Some(dataset))
            .await;
        self.read_response().await
    }

    /// C-ECHO and return the response.
    pub async fn c_echo(&mut self, context_id: u8, message_id: u16) -> Command {
        self.send_message(context_id, &Command::EchoRq { message_id }.encode(), None)
            .await;
        self.read_response().await
    }

    /// A-RELEASE.
    pub async fn release(self) {
        self.association.release().await.expect("A-RELEASE");
    }
}

/// A small MR data set in Explicit VR Little Endian. `sop_instance_uid: None` leaves the
/// SOP Instance UID out; `sop_class_uid` is what the data set claims to be.
pub fn mr_dataset(
    sop_class_uid: &str,
    sop_instance_uid: Option<&str>,
    study_uid: &str,
    series_uid: &str,
) -> Vec<u8> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag, vr, value: PrimitiveValue| obj.put(DataElement::new(tag, vr, value));
    put(tags::SOP_CLASS_UID, VR::UI, sop_class_uid.into());
    if let Some(uid) = sop_instance_uid {
        put(tags::SOP_INSTANCE_UID, VR::UI, uid.into());
    }
    put(tags::PATIENT_NAME, VR::PN, "Raw^Scu".into());
    put(tags::PATIENT_ID, VR::LO, "RAW001".into());
    put(tags::STUDY_INSTANCE_UID, VR::UI, study_uid.into());
    put(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.into());
    put(tags::MODALITY, VR::CS, "MR".into());
    put(tags::ROWS, VR::US, PrimitiveValue::from(4_u16));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(4_u16));
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(16_u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15_u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0_u16),
    );
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2".into(),
    );
    put(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16((0..16u16).collect()),
    );
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("encode the data set");
    out
}
