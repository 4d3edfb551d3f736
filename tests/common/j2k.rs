//! A lossless JPEG 2000 encoder for test inputs. DCMTK 3.6.7 cannot write JPEG 2000 and
//! dicom-rs only decodes it, so the fixtures are encoded with `openjp2`, the pure-Rust
//! OpenJPEG port that dicom-rs's own J2K decoder is built on (reversible 5/3 wavelet, one
//! quality layer, no rate limit: lossless). Its API is OpenJPEG's C API, hence the
//! `unsafe` below; the stream callbacks write into a `Cursor<Vec<u8>>`.

use std::ffi::c_void;
use std::io::{Cursor, Seek, SeekFrom, Write};

use openjp2::image::opj_image_cmptparm_t;
use openjp2::image::{opj_image_create, opj_image_destroy};
use openjp2::openjpeg::{
    opj_create_compress, opj_destroy_codec, opj_encode, opj_end_compress, opj_setup_encoder,
    opj_start_compress, opj_stream_create, opj_stream_destroy, opj_stream_set_seek_function,
    opj_stream_set_skip_function, opj_stream_set_user_data, opj_stream_set_write_function,
};
use openjp2::{OPJ_CLRSPC_GRAY, OPJ_CODEC_J2K, opj_cparameters_t};

unsafe extern "C" fn write_cb(buffer: *mut c_void, n: usize, user: *mut c_void) -> usize {
    // SAFETY: `user` is the `Cursor` passed to `opj_stream_set_user_data`, alive for the
    // whole encode; `buffer` holds `n` bytes written by the encoder.
    let (out, bytes) = unsafe {
        (
            &mut *(user as *mut Cursor<Vec<u8>>),
            std::slice::from_raw_parts(buffer as *const u8, n),
        )
    };
    match out.write_all(bytes) {
        Ok(()) => n,
        Err(_) => usize::MAX,
    }
}

unsafe extern "C" fn skip_cb(n: i64, user: *mut c_void) -> i64 {
    // SAFETY: as in `write_cb`.
    let out = unsafe { &mut *(user as *mut Cursor<Vec<u8>>) };
    match out.seek(SeekFrom::Current(n)) {
        Ok(_) => n,
        Err(_) => -1,
    }
}

unsafe extern "C" fn seek_cb(position: i64, user: *mut c_void) -> i32 {
    // SAFETY: as in `write_cb`.
    let out = unsafe { &mut *(user as *mut Cursor<Vec<u8>>) };
    i32::from(out.seek(SeekFrom::Start(position as u64)).is_ok())
}

/// Encode one grayscale frame (`rows` x `cols` unsigned values of `bits_stored` bits) as a
/// lossless JPEG 2000 codestream (no JP2 box, as DICOM wants).
pub fn encode_lossless_gray(values: &[u16], rows: u32, cols: u32, bits_stored: u32) -> Vec<u8> {
    assert_eq!(values.len(), (rows * cols) as usize);
    let mut out = Cursor::new(Vec::new());
    // One layer at rate 0 (no truncation) with the reversible wavelet: lossless.
    let mut params = opj_cparameters_t {
        tcp_numlayers: 1,
        cp_disto_alloc: 1,
        irreversible: 0,
        ..Default::default()
    };
    let mut component = opj_image_cmptparm_t {
        dx: 1,
        dy: 1,
        w: cols,
        h: rows,
        x0: 0,
        y0: 0,
        prec: bits_stored,
        bpp: bits_stored,
        sgnd: 0,
    };
    // SAFETY: every pointer below comes from the matching OpenJPEG constructor, is checked
    // for null, used only while alive and destroyed once; the component data buffer has
    // rows * cols samples because the image was created with these dimensions.
    unsafe {
        let image = opj_image_create(1, &mut component, OPJ_CLRSPC_GRAY);
        assert!(!image.is_null(), "opj_image_create failed");
        (*image).x0 = 0;
        (*image).y0 = 0;
        (*image).x1 = cols;
        (*image).y1 = rows;
        let data = std::slice::from_raw_parts_mut((*(*image).comps).data, values.len());
        for (dst, src) in data.iter_mut().zip(values) {
            *dst = i32::from(*src);
        }

        let codec = opj_create_compress(OPJ_CODEC_J2K);
        assert!(!codec.is_null(), "opj_create_compress failed");
        assert_eq!(
            opj_setup_encoder(codec, &mut params, image),
            1,
            "opj_setup_encoder failed"
        );

        let stream = opj_stream_create(1 << 16, 0);
        assert!(!stream.is_null(), "opj_stream_create failed");
        opj_stream_set_write_function(stream, Some(write_cb));
        opj_stream_set_skip_function(stream, Some(skip_cb));
        opj_stream_set_seek_function(stream, Some(seek_cb));
        opj_stream_set_user_data(
            stream,
            &mut out as *mut Cursor<Vec<u8>> as *mut c_void,
            None,
        );

        let ok = opj_start_compress(codec, image, stream) == 1
            && opj_encode(codec, stream) == 1
            && opj_end_compress(codec, stream) == 1;
        opj_stream_destroy(stream);
        opj_destroy_codec(codec);
        opj_image_destroy(image);
        assert!(ok, "OpenJPEG failed to encode a {rows}x{cols} frame");
    }
    let bytes = out.into_inner();
    assert!(
        bytes.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]),
        "not a J2K codestream"
    );
    bytes
}
