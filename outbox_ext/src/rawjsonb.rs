//! `RawJsonb`: a jsonb argument passed through untouched.
//!
//! pgrx's `JsonB` turns every value into text and parses it into a
//! `serde_json::Value` on the way in, and back on the way out. The payload is
//! the largest thing enqueue handles and it only needs its size checked, so
//! it travels as the datum PostgreSQL gave us and goes straight back to SPI.
//! This is the crate's one hand-written `unsafe` module besides the doorbell.

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::{Datum, FromDatum, IntoDatum, UnboxDatum};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};

/// A borrowed, non-NULL jsonb datum, valid for the function call it came in.
#[derive(Clone, Copy, Debug)]
pub struct RawJsonb(pg_sys::Datum);

impl RawJsonb {
    /// Bytes of the value as stored, before any compression.
    pub fn stored_bytes(&self) -> usize {
        // SAFETY: self.0 is a non-NULL jsonb varlena datum (possibly toasted
        // or compressed); toast_raw_datum_size reads only its header.
        unsafe { pg_sys::toast_raw_datum_size(self.0) }
    }

    /// The value as `serde_json`, for the small things we inspect (headers).
    /// `Err` says why serde_json refused jsonb's text (nesting past its
    /// recursion limit, a number beyond f64): pgrx's own `JsonB` panics there.
    pub fn to_value(self) -> Result<serde_json::Value, String> {
        // SAFETY: self.0 is a non-NULL jsonb datum; jsonb_out takes exactly
        // that (detoasting it itself) and returns a palloc'd C string.
        let text = unsafe {
            pgrx::direct_function_call::<&core::ffi::CStr>(pg_sys::jsonb_out, &[Some(self.0)])
        }
        .ok_or_else(|| "jsonb_out returned NULL".to_owned())?;
        let parsed = match text.to_str() {
            Ok(s) => serde_json::from_str(s).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        // SAFETY: text was palloc'd by jsonb_out above and is not used again.
        unsafe { pg_sys::pfree(text.as_ptr() as *mut core::ffi::c_void) };
        parsed
    }
}

impl FromDatum for RawJsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        (!is_null).then_some(RawJsonb(datum))
    }
}

impl IntoDatum for RawJsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

// SAFETY: RawJsonb holds the datum as-is and borrows nothing beyond the
// array or argument it was unboxed from, which outlives the call.
unsafe impl UnboxDatum for RawJsonb {
    type As<'src> = RawJsonb;

    unsafe fn unbox<'src>(datum: Datum<'src>) -> RawJsonb
    where
        Self: 'src,
    {
        RawJsonb(datum.sans_lifetime())
    }
}

// SAFETY: arguments declared as jsonb (see SqlTranslatable below) hold jsonb
// datums; NULL is reported as Nullable::Null and never unboxed.
unsafe impl<'fcx> ArgAbi<'fcx> for RawJsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: the caller guarantees the argument is a jsonb datum.
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        // SAFETY: the caller guarantees the argument is a jsonb datum.
        unsafe { arg.unbox_arg_using_from_datum::<RawJsonb>() }.into()
    }
}

// SAFETY: the datum is a jsonb value that lives at least as long as the
// call's result (claim copies it out of SPI memory with outlive_spi).
unsafe impl BoxRet for RawJsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        // SAFETY: a valid jsonb datum is returned for a jsonb result column.
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

// SAFETY: RawJsonb is exactly a jsonb datum, in and out.
unsafe impl SqlTranslatable for RawJsonb {
    const TYPE_IDENT: &'static str = concat!(module_path!(), "::RawJsonb");
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

impl RawJsonb {
    /// A copy of this value (read from an SPI result) in the memory context
    /// that outlives `SPI_finish`, so it can be returned from the function.
    pub fn outlive_spi(self) -> Self {
        // SAFETY: self.0 is a non-NULL jsonb varlena from the current SPI
        // result; SPI_datumTransfer copies it (typByVal false, typLen -1 for
        // varlena) into the upper executor context, as SPI documents for
        // values returned past SPI_finish.
        RawJsonb(unsafe { pg_sys::SPI_datumTransfer(self.0, false, -1) })
    }
}
