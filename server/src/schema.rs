//! Schemas of values the document describes more narrowly than their Rust types (a table's
//! names, a tuple, a field that may only be null): each is built from the code's own tables
//! where one exists, so the document follows the code.

/// An OpenAPI string enum of the synced collections `keep` selects, from core's table.
fn collections(
    description: &str,
    keep: fn(&thudo_core::changes::CollectionSpec) -> bool,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(
            thudo_core::collections::specs()
                .iter()
                .filter(|c| keep(c))
                .map(|c| c.name),
        ))
        .description(Some(description))
        .into()
}

/// A collection devices pull.
pub struct PullableCollection;

impl utoipa::PartialSchema for PullableCollection {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        collections("A collection devices pull", |c| c.pullable)
    }
}

impl utoipa::ToSchema for PullableCollection {}

/// A collection a party organisation publishes to its cells.
pub struct CellCollection;

impl utoipa::PartialSchema for CellCollection {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        collections("A collection published to a cell", |c| c.per_cell)
    }
}

impl utoipa::ToSchema for CellCollection {}

/// A category an entitlement grants: any but `standard` (which needs none).
pub struct ReducedCategory;

impl utoipa::PartialSchema for ReducedCategory {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use thudo_core::transit::Category;
        let names = (0..=u8::MAX)
            .filter_map(Category::from_code)
            .filter(|c| *c != Category::Standard)
            .filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(str::to_owned));
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(names))
            .description(Some("A reduced or free passenger category"))
            .into()
    }
}

impl utoipa::ToSchema for ReducedCategory {}

/// `[day, VND]`: a local day (`YYYY-MM-DD`) and a sum.
pub struct DayTotal;

impl utoipa::PartialSchema for DayTotal {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            ArrayBuilder, ArrayItems, ObjectBuilder, SchemaFormat, Type,
        };
        ArrayBuilder::new()
            .items(ArrayItems::False)
            .prefix_items([
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Date,
                    )))
                    .build(),
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .build(),
            ])
            .min_items(Some(2))
            .max_items(Some(2))
            .description(Some("A local day and a sum in VND"))
            .into()
    }
}

impl utoipa::ToSchema for DayTotal {}

/// JSON `null`: a field that may be sent only as null (or left out).
pub struct Null;

impl utoipa::PartialSchema for Null {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Null)
            .into()
    }
}

impl utoipa::ToSchema for Null {}

/// JSON `true`: a flag that names a kind of request and has no other value.
pub struct True;

impl utoipa::PartialSchema for True {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Boolean)
            .enum_values(Some([true]))
            .into()
    }
}

impl utoipa::ToSchema for True {}
