//! Derive macros for [batpak](https://docs.rs/batpak).
//!
//! Use them through the `batpak` crate, which re-exports the derive next to the trait of the
//! same name (the way serde does):
//!
//! ```text
//! use batpak::EventPayload;
//!
//! #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
//! #[batpak(category = 0xF, type_id = 1)]
//! struct OrderPlaced {
//!     total: u64,
//! }
//! ```
//!
//! The generated code names `::batpak::event::EventPayload`, so the derive only works in
//! crates that depend on `batpak`; inside the `batpak` crate itself the `::batpak` path does
//! not resolve (batpak never derives its own payloads).
//!
//! The attribute is checked here, before the `const` evaluation in `EventKind::custom` would
//! reject it, so a mistake points at the offending token:
//!
//! - the `#[batpak(...)]` attribute is required, once;
//! - `category` and `type_id` are both required, once each, as integer literals;
//! - `category` must be `0x1..=0xF` and not `0xD` (`0x0` system and `0xD` effects are
//!   reserved for the store);
//! - `type_id` must be `0x000..=0xFFF`;
//! - no other keys are accepted;
//! - the type must not be generic (every instantiation would share the kind).
//!
//! The `compile_fail` examples for these errors live in the `batpak` crate docs (a doc test
//! here could not depend on `batpak`).
use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::spanned::Spanned;
use syn::{parse_macro_input, DeriveInput, Expr, ExprLit, Lit, LitInt, Meta};

mod event_sourced;

/// Derives `batpak::event::EventSourced` from upstream's attributes:
/// `#[batpak(input = JsonValueInput | RawMsgpackInput, cache_version = N)]` and one
/// `#[batpak(event = Payload, handler = method)]` per payload type (`fn method(&mut self,
/// p: &Payload)`). The type must implement `Default`.
///
/// Generates the fallible forms `try_apply_event` / `try_from_events`: a matching event
/// whose payload does not decode is an error (`Store::project` reports it as
/// `StoreError::ProjectionDecode`), never a panic; events of other kinds are skipped. The
/// fold is a plain fold from `Default::default()`, so `supports_incremental_apply()` is
/// `true` and snapshots apply.
#[proc_macro_derive(EventSourced, attributes(batpak))]
pub fn derive_event_sourced(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match event_sourced::expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// Highest category that fits in the 4 category bits of an `EventKind`.
const CATEGORY_MAX: u64 = 0xF;
/// Highest type id that fits in the 12 type bits of an `EventKind`.
const TYPE_ID_MAX: u64 = 0xFFF;
/// Category of the store's own system events.
const CATEGORY_SYSTEM: u64 = 0x0;
/// Category reserved for effects.
const CATEGORY_EFFECT: u64 = 0xD;

/// Derives `batpak::EventPayload` from `#[batpak(category = C, type_id = T)]`.
///
/// Generates `const KIND: EventKind = EventKind::custom(C, T);` and registers the type in
/// batpak's link-time payload registry (`batpak::event::validate_event_payload_registry` finds
/// two types claiming one kind anywhere in the binary). The type must also implement
/// `serde::Serialize` and `serde::DeserializeOwned` (derive them alongside).
///
/// Structs of any shape (named fields, tuple, unit) and enums are accepted: each is one Rust
/// type with one serde shape. Generic types are refused: all their instantiations would share
/// the kind.
#[proc_macro_derive(EventPayload, attributes(batpak))]
pub fn derive_event_payload(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

/// The validated contents of `#[batpak(...)]`.
struct KindAttr {
    category: u8,
    type_id: u16,
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    refuse_generics(input)?;
    let attr = parse_kind_attr(input)?;
    let name = &input.ident;
    let category = attr.category;
    let type_id = attr.type_id;
    Ok(quote! {
        impl ::batpak::event::EventPayload for #name {
            const KIND: ::batpak::event::EventKind =
                ::batpak::event::EventKind::custom(#category, #type_id);
        }
        ::batpak::__private::inventory::submit! {
            ::batpak::__private::EventPayloadRegistration {
                kind: <#name as ::batpak::event::EventPayload>::KIND,
                module_path: ::core::module_path!(),
                type_name: ::core::stringify!(#name),
                crate_version: ::core::option_env!("CARGO_PKG_VERSION"),
            }
        }
    })
}

/// A kind names one Rust type: every instantiation of a generic type would share it, so one
/// instantiation's events would decode as another's after a restart.
fn refuse_generics(input: &DeriveInput) -> syn::Result<()> {
    match input.generics.params.first() {
        None => Ok(()),
        Some(param) => Err(syn::Error::new(
            param.span(),
            format!(
                "#[derive(EventPayload)] does not support generic types: every instantiation of `{}` would share one EventKind, so events of one would decode as another; derive it on a concrete type (e.g. a struct wrapping `{}<u64>`) or implement EventPayload by hand per instantiation",
                input.ident, input.ident
            ),
        )),
    }
}

fn parse_kind_attr(input: &DeriveInput) -> syn::Result<KindAttr> {
    let mut found: Option<&syn::Attribute> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("batpak")) {
        if found.is_some() {
            return Err(syn::Error::new_spanned(
                &attr.meta,
                "duplicate #[batpak(...)] attribute: give category and type_id once",
            ));
        }
        found = Some(attr);
    }
    let Some(attr) = found else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(EventPayload)] needs #[batpak(category = <0x1..=0xF>, type_id = <0x0..=0xFFF>)]",
        ));
    };
    if let Meta::Path(path) = &attr.meta {
        return Err(syn::Error::new(
            path.span(),
            "#[batpak] needs arguments: #[batpak(category = .., type_id = ..)]",
        ));
    }
    let mut category: Option<(u64, Span)> = None;
    let mut type_id: Option<(u64, Span)> = None;
    attr.parse_nested_meta(|meta| {
        let slot = if meta.path.is_ident("category") {
            &mut category
        } else if meta.path.is_ident("type_id") {
            &mut type_id
        } else {
            return Err(
                meta.error("unknown key in #[batpak(...)]: expected `category` or `type_id`")
            );
        };
        if slot.is_some() {
            return Err(meta.error("duplicate key in #[batpak(...)]"));
        }
        let lit = int_literal(&meta.value()?.parse::<Expr>()?)?;
        *slot = Some((lit.base10_parse::<u64>()?, lit.span()));
        Ok(())
    })?;
    let Some((category, category_span)) = category else {
        return Err(syn::Error::new_spanned(
            &attr.meta,
            "#[batpak(...)] is missing `category = ..`",
        ));
    };
    let Some((type_id, type_id_span)) = type_id else {
        return Err(syn::Error::new_spanned(
            &attr.meta,
            "#[batpak(...)] is missing `type_id = ..`",
        ));
    };
    Ok(KindAttr {
        category: check_category(category, category_span)?,
        type_id: check_type_id(type_id, type_id_span)?,
    })
}

/// Accepts only a plain integer literal (no expressions, constants or negative numbers).
fn int_literal(expr: &Expr) -> syn::Result<LitInt> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => {
            if lit.suffix().is_empty() {
                Ok(lit.clone())
            } else {
                Err(syn::Error::new(
                    lit.span(),
                    "write the number without a type suffix",
                ))
            }
        }
        other => Err(syn::Error::new(
            other.span(),
            "expected an integer literal such as 0xF or 1",
        )),
    }
}

fn check_category(value: u64, span: Span) -> syn::Result<u8> {
    if value > CATEGORY_MAX {
        return Err(syn::Error::new(
            span,
            format!("category {value:#x} does not fit in 4 bits: use 0x1..=0xF"),
        ));
    }
    if value == CATEGORY_SYSTEM || value == CATEGORY_EFFECT {
        return Err(syn::Error::new(
            span,
            format!("category {value:#x} is reserved (0x0 system, 0xD effects)"),
        ));
    }
    u8::try_from(value).map_err(|_| syn::Error::new(span, "category out of range"))
}

fn check_type_id(value: u64, span: Span) -> syn::Result<u16> {
    if value > TYPE_ID_MAX {
        return Err(syn::Error::new(
            span,
            format!("type_id {value:#x} does not fit in 12 bits: use 0x0..=0xFFF"),
        ));
    }
    u16::try_from(value).map_err(|_| syn::Error::new(span, "type_id out of range"))
}

mod multi_event_reactor;

/// Derives `batpak::store::MultiReactive<Lane>` from upstream's attributes:
/// `#[batpak(input = JsonValueInput | RawMsgpackInput, error = MyError)]` and one
/// `#[batpak(event = Payload, handler = method)]` per payload type, each handler
/// `fn(&mut self, &StoredEvent<Payload>, &mut ReactionBatch, Option<&AtLeastOnce>) ->
/// Result<(), MyError>`. Events of other kinds are skipped; a handled event that does not
/// decode is a `Decode` error, never a panic or a silent skip.
#[proc_macro_derive(MultiEventReactor, attributes(batpak))]
pub fn derive_multi_event_reactor(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match multi_event_reactor::expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}
