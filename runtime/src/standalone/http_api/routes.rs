//! The route table of `/api/*`: each path has exactly one method, which a 405 names in `Allow`.

/// One API endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// `GET /api/health`
    Health,
    /// `GET /api/metrics`
    Metrics,
    /// `GET /api/info`
    Info,
    /// `POST /api/publish`
    Publish,
    /// `POST /api/broadcast`
    Broadcast,
    /// `POST /api/disconnect`
    Disconnect,
    /// `GET /api/presence`
    Presence,
    /// `GET /api/presence_stats`
    PresenceStats,
    /// `GET /api/history`
    History,
    /// `POST /api/token`
    Token,
}

impl Route {
    /// The route at `path` (exact match, no trailing slash).
    pub(super) fn from_path(path: &str) -> Option<Route> {
        Some(match path {
            "/api/health" => Route::Health,
            "/api/metrics" => Route::Metrics,
            "/api/info" => Route::Info,
            "/api/publish" => Route::Publish,
            "/api/broadcast" => Route::Broadcast,
            "/api/disconnect" => Route::Disconnect,
            "/api/presence" => Route::Presence,
            "/api/presence_stats" => Route::PresenceStats,
            "/api/history" => Route::History,
            "/api/token" => Route::Token,
            _ => return None,
        })
    }

    /// The one method the route answers.
    pub(super) fn method(self) -> &'static str {
        match self {
            Route::Health
            | Route::Metrics
            | Route::Info
            | Route::Presence
            | Route::PresenceStats
            | Route::History => "GET",
            Route::Publish | Route::Broadcast | Route::Disconnect | Route::Token => "POST",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes_exactly() {
        assert_eq!(Route::from_path("/api/publish"), Some(Route::Publish));
        assert_eq!(Route::Publish.method(), "POST");
        assert_eq!(
            Route::from_path("/api/presence_stats"),
            Some(Route::PresenceStats)
        );
        assert_eq!(Route::History.method(), "GET");
        for unknown in [
            "/api/health/",
            "/api/",
            "/api",
            "/API/health",
            "/api/healthz",
        ] {
            assert_eq!(Route::from_path(unknown), None, "{unknown}");
        }
    }
}
