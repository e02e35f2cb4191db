//! Reads and writes go to the database of the source that streams the namespace.

use stream_core::{Namespace, Query, Row, Store, StoreError};

use super::StreamerError;
use super::sources::SourceSpec;

/// One store per source, chosen by namespace.
pub(crate) struct Router {
    routes: Vec<Route>,
}

struct Route {
    wants: Box<dyn Fn(&Namespace) -> bool + Send + Sync>,
    store: Box<dyn Store>,
}

impl Router {
    pub(crate) async fn new(specs: &[&SourceSpec]) -> Result<Self, StreamerError> {
        #[cfg_attr(not(any(feature = "mysql", feature = "mongo")), allow(unused_mut))]
        let mut routes = Vec::new();
        for spec in specs.iter().copied() {
            match spec {
                #[cfg(feature = "mysql")]
                SourceSpec::MySql(config) => {
                    let wanted = config.clone();
                    routes.push(Route {
                        wants: Box::new(move |ns| wanted.wants(&ns.db, &ns.table)),
                        store: Box::new(stream_mysql::MySqlStore::new(config)),
                    });
                }
                #[cfg(feature = "mongo")]
                SourceSpec::Mongo(config) => {
                    let wanted = config.clone();
                    let store = stream_mongo::MongoStore::connect_with(config)
                        .await
                        .map_err(StreamerError::Store)?;
                    routes.push(Route {
                        wants: Box::new(move |ns| wanted.wants(&ns.db, &ns.table)),
                        store: Box::new(store),
                    });
                }
                SourceSpec::Custom { .. } => {}
            }
        }
        Ok(Self { routes })
    }

    fn route(&self, ns: &Namespace) -> Result<&dyn Store, StoreError> {
        self.routes
            .iter()
            .find(|r| (r.wants)(ns))
            .map(|r| r.store.as_ref())
            .ok_or_else(|| StoreError::UnknownNamespace {
                namespace: ns.to_string(),
            })
    }
}

#[async_trait::async_trait]
impl Store for Router {
    async fn read(&self, ns: &Namespace, key: &Row) -> Result<Option<Row>, StoreError> {
        self.route(ns)?.read(ns, key).await
    }

    async fn write(&self, ns: &Namespace, key: &Row, row: &Row) -> Result<(), StoreError> {
        self.route(ns)?.write(ns, key, row).await
    }

    async fn delete(&self, ns: &Namespace, key: &Row) -> Result<bool, StoreError> {
        self.route(ns)?.delete(ns, key).await
    }

    async fn query(&self, ns: &Namespace, query: &Query) -> Result<Vec<Row>, StoreError> {
        self.route(ns)?.query(ns, query).await
    }
}
