//! `#[derive(MultiEventReactor)]`: upstream's attributes, checked here so a mistake points at
//! its token.
//!
//! - exactly one `#[batpak(input = Lane, error = Type)]` (both keys required);
//! - one or more `#[batpak(event = Payload, handler = method)]`, each payload at most once;
//! - no other keys; the type must not be generic (the runner needs a `'static` reactor type
//!   whose kinds are fixed).
//!
//! Each handler is `fn(&mut self, &StoredEvent<Payload>, &mut ReactionBatch,
//! Option<&AtLeastOnce>) -> Result<(), Error>`. The generated `dispatch` decodes a handled
//! kind through the lane; `dispatch_msgpack` (what the store's runner calls) decodes straight
//! from the stored MessagePack bytes into the handler's type.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{DeriveInput, Expr, Meta, Path, Token};

struct Binding {
    event: Path,
    handler: syn::Ident,
}

fn path_of(expr: &Expr, key: &str) -> syn::Result<Path> {
    match expr {
        Expr::Path(p) => Ok(p.path.clone()),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{key}` takes a type path, e.g. `{key} = MyType`"),
        )),
    }
}

pub fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "MultiEventReactor cannot be derived for a generic type",
        ));
    }
    let name = &input.ident;
    let mut lane: Option<(Path, Path)> = None;
    let mut bindings: Vec<Binding> = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("batpak")) {
        let metas =
            attr.parse_args_with(syn::punctuated::Punctuated::<Meta, Token![,]>::parse_terminated)?;
        let mut input_ty = None;
        let mut error_ty = None;
        let mut event = None;
        let mut handler = None;
        for meta in &metas {
            let Meta::NameValue(nv) = meta else {
                return Err(syn::Error::new(meta.span(), "expected `key = value`"));
            };
            let key = nv
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let slot = match key.as_str() {
                "input" => &mut input_ty,
                "error" => &mut error_ty,
                "event" => &mut event,
                "handler" => &mut handler,
                _ => {
                    return Err(syn::Error::new(
                        nv.path.span(),
                        "unknown key: MultiEventReactor takes `input`, `error`, `event` and \
                         `handler`",
                    ))
                }
            };
            if slot.is_some() {
                return Err(syn::Error::new(
                    nv.path.span(),
                    format!("`{key}` given twice"),
                ));
            }
            *slot = Some(path_of(&nv.value, &key)?);
        }
        match (input_ty, error_ty, event, handler) {
            (Some(i), Some(e), None, None) => {
                if lane.is_some() {
                    return Err(syn::Error::new(
                        attr.span(),
                        "`#[batpak(input = .., error = ..)]` given twice",
                    ));
                }
                lane = Some((i, e));
            }
            (None, None, Some(ev), Some(h)) => {
                let Some(handler) = h.get_ident().cloned() else {
                    return Err(syn::Error::new(h.span(), "`handler` takes a method name"));
                };
                let shown = quote!(#ev).to_string();
                if bindings.iter().any(|b| {
                    let e = &b.event;
                    quote!(#e).to_string() == shown
                }) {
                    return Err(syn::Error::new(ev.span(), "this event is bound twice"));
                }
                bindings.push(Binding { event: ev, handler });
            }
            _ => {
                return Err(syn::Error::new(
                    attr.span(),
                    "expected `#[batpak(input = Lane, error = Type)]` or \
                     `#[batpak(event = Payload, handler = method)]`",
                ))
            }
        }
    }
    let Some((lane, error)) = lane else {
        return Err(syn::Error::new(
            name.span(),
            "MultiEventReactor needs `#[batpak(input = JsonValueInput, error = MyError)]`",
        ));
    };
    if bindings.is_empty() {
        return Err(syn::Error::new(
            name.span(),
            "MultiEventReactor needs at least one `#[batpak(event = Payload, handler = method)]`",
        ));
    }
    let route = format_ident!("__batpak_route_{}", name);
    let events: Vec<&Path> = bindings.iter().map(|b| &b.event).collect();
    let handlers: Vec<&syn::Ident> = bindings.iter().map(|b| &b.handler).collect();
    Ok(quote! {
        impl #name {
            #[doc(hidden)]
            #[allow(non_snake_case)]
            fn #route<__P>(
                &mut self,
                event: &::batpak::event::StoredEvent<__P>,
                out: &mut ::batpak::store::ReactionBatch,
                witness: ::core::option::Option<&::batpak::store::AtLeastOnce>,
            ) -> ::core::result::Result<(), ::batpak::store::MultiDispatchError<#error>>
            where
                ::batpak::event::Event<__P>: ::batpak::event::DecodeTyped,
            {
                let kind = event.event.header.event_kind;
                #(
                    if kind == <#events as ::batpak::event::EventPayload>::KIND {
                        let typed = ::batpak::__private::typed_view::<#events, __P>(event)
                            .map_err(::batpak::store::MultiDispatchError::Decode)?;
                        return self
                            .#handlers(&typed, out, witness)
                            .map_err(::batpak::store::MultiDispatchError::User);
                    }
                )*
                ::core::result::Result::Ok(())
            }
        }

        impl ::batpak::store::MultiReactive<#lane> for #name {
            type Error = #error;

            fn relevant_event_kinds() -> &'static [::batpak::event::EventKind] {
                const KINDS: &[::batpak::event::EventKind] =
                    &[#(<#events as ::batpak::event::EventPayload>::KIND),*];
                KINDS
            }

            fn dispatch(
                &mut self,
                event: &::batpak::event::StoredEvent<
                    <#lane as ::batpak::event::ProjectionInput>::Payload,
                >,
                out: &mut ::batpak::store::ReactionBatch,
                witness: ::core::option::Option<&::batpak::store::AtLeastOnce>,
            ) -> ::core::result::Result<(), ::batpak::store::MultiDispatchError<#error>> {
                self.#route(event, out, witness)
            }

            fn dispatch_msgpack(
                &mut self,
                event: &::batpak::event::StoredEvent<::std::vec::Vec<u8>>,
                out: &mut ::batpak::store::ReactionBatch,
                witness: ::core::option::Option<&::batpak::store::AtLeastOnce>,
            ) -> ::core::result::Result<(), ::batpak::store::MultiDispatchError<#error>> {
                self.#route(event, out, witness)
            }
        }
    })
}
