//! `#[derive(EventSourced)]`: upstream's attributes, generating the fallible replay forms.
//!
//! ```text
//! #[derive(Default, Serialize, Deserialize, EventSourced)]
//! #[batpak(input = JsonValueInput, cache_version = 0)]
//! #[batpak(event = Incremented, handler = on_incremented)]
//! struct Counter { value: i64 }
//! ```
//!
//! Generates `type Input`, `relevant_event_kinds` (from the `event =` list), `schema_version`
//! (from `cache_version`, default 0), `supports_incremental_apply() == true` (the generated
//! fold is a plain fold from `Default::default()`), and `try_apply_event` /
//! `try_from_events`, which route each event by kind to its handler and return the decode
//! error of a matching event whose payload does not decode. The infallible `apply_event`
//! leaves the state unchanged on such an event and `from_events` returns `None` for such a
//! stream: neither panics (upstream's derive does). `Store::project` replays through the
//! fallible forms and reports the event.
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{DeriveInput, Expr, ExprLit, Ident, Lit, LitInt, Path};

struct Binding {
    event: Path,
    handler: Ident,
}

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    if let syn::Data::Union(u) = &input.data {
        return Err(syn::Error::new(
            u.union_token.span,
            "#[derive(EventSourced)] does not support unions",
        ));
    }
    let mut lane: Option<Path> = None;
    let mut cache_version: Option<u64> = None;
    let mut bindings: Vec<Binding> = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("batpak")) {
        let mut a_input: Option<Path> = None;
        let mut a_cache: Option<u64> = None;
        let mut a_event: Option<Path> = None;
        let mut a_handler: Option<Ident> = None;
        attr.parse_nested_meta(|meta| {
            let dup = || meta.error("duplicate key in #[batpak(...)]");
            if meta.path.is_ident("input") {
                if a_input.is_some() {
                    return Err(dup());
                }
                a_input = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("cache_version") {
                if a_cache.is_some() {
                    return Err(dup());
                }
                let lit = int_literal(&meta.value()?.parse::<Expr>()?)?;
                a_cache = Some(lit.base10_parse::<u64>()?);
            } else if meta.path.is_ident("event") {
                if a_event.is_some() {
                    return Err(dup());
                }
                a_event = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("handler") {
                if a_handler.is_some() {
                    return Err(dup());
                }
                a_handler = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("error") {
                return Err(meta.error(
                    "`error` is not valid on #[derive(EventSourced)]: a projection has no error type (decode failures are TypedDecodeError)",
                ));
            } else {
                return Err(meta.error(
                    "unknown key in #[batpak(...)]: expected `input`, `cache_version`, `event` or `handler`",
                ));
            }
            Ok(())
        })?;
        match (a_event, a_handler) {
            (Some(event), Some(handler)) => {
                if a_input.is_some() || a_cache.is_some() {
                    return Err(syn::Error::new_spanned(
                        &attr.meta,
                        "give `event = .., handler = ..` in their own #[batpak(...)], apart from `input` / `cache_version`",
                    ));
                }
                let key = quote!(#event).to_string();
                if bindings.iter().any(|b| {
                    let e = &b.event;
                    quote!(#e).to_string() == key
                }) {
                    return Err(syn::Error::new(
                        event.span(),
                        "duplicate `event = ..`: each payload type binds to one handler",
                    ));
                }
                bindings.push(Binding { event, handler });
            }
            (Some(event), None) => {
                return Err(syn::Error::new(
                    event.span(),
                    "`event = ..` needs `handler = <method>` in the same #[batpak(...)]",
                ))
            }
            (None, Some(handler)) => {
                return Err(syn::Error::new(
                    handler.span(),
                    "`handler = ..` needs `event = <payload type>` in the same #[batpak(...)]",
                ))
            }
            (None, None) => {
                if let Some(p) = a_input {
                    if lane.is_some() {
                        return Err(syn::Error::new(p.span(), "duplicate `input = ..`"));
                    }
                    lane = Some(p);
                }
                if let Some(v) = a_cache {
                    if cache_version.is_some() {
                        return Err(syn::Error::new_spanned(
                            &attr.meta,
                            "duplicate `cache_version = ..`",
                        ));
                    }
                    cache_version = Some(v);
                }
            }
        }
    }
    let Some(lane) = lane else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(EventSourced)] needs #[batpak(input = JsonValueInput)] or #[batpak(input = RawMsgpackInput)]",
        ));
    };
    if bindings.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(EventSourced)] needs at least one #[batpak(event = <Payload>, handler = <method>)]",
        ));
    }
    let version = cache_version.unwrap_or(0);
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let events: Vec<&Path> = bindings.iter().map(|b| &b.event).collect();
    let handlers: Vec<&Ident> = bindings.iter().map(|b| &b.handler).collect();
    Ok(quote! {
        impl #impl_generics ::batpak::event::EventSourced for #name #ty_generics #where_clause {
            type Input = #lane;

            fn from_events(
                events: &[::batpak::event::ProjectionEvent<Self>],
            ) -> ::core::option::Option<Self> {
                <Self as ::batpak::event::EventSourced>::try_from_events(events)
                    .unwrap_or(::core::option::Option::None)
            }

            fn apply_event(&mut self, event: &::batpak::event::ProjectionEvent<Self>) {
                let _ = <Self as ::batpak::event::EventSourced>::try_apply_event(self, event);
            }

            fn relevant_event_kinds() -> &'static [::batpak::event::EventKind] {
                &[#(<#events as ::batpak::event::EventPayload>::KIND),*]
            }

            fn schema_version() -> u64 {
                #version
            }

            fn supports_incremental_apply() -> bool {
                true
            }

            fn try_apply_event(
                &mut self,
                event: &::batpak::event::ProjectionEvent<Self>,
            ) -> ::core::result::Result<(), ::batpak::event::TypedDecodeError> {
                let kind = event.header.event_kind;
                #(
                    if kind == <#events as ::batpak::event::EventPayload>::KIND {
                        let payload: #events =
                            ::batpak::event::DecodeTyped::decode_typed::<#events>(event)?;
                        self.#handlers(&payload);
                        return ::core::result::Result::Ok(());
                    }
                )*
                ::core::result::Result::Ok(())
            }

            fn try_from_events(
                events: &[::batpak::event::ProjectionEvent<Self>],
            ) -> ::core::result::Result<::core::option::Option<Self>, ::batpak::event::TypedDecodeError> {
                if events.is_empty() {
                    return ::core::result::Result::Ok(::core::option::Option::None);
                }
                let mut state: Self = ::core::default::Default::default();
                for event in events {
                    <Self as ::batpak::event::EventSourced>::try_apply_event(&mut state, event)?;
                }
                ::core::result::Result::Ok(::core::option::Option::Some(state))
            }
        }
    })
}

fn int_literal(expr: &Expr) -> syn::Result<LitInt> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) if lit.suffix().is_empty() => Ok(lit.clone()),
        other => Err(syn::Error::new(
            other.span(),
            "expected an integer literal such as 0 or 1",
        )),
    }
}
