package cache

// SetOnPublish makes [Store.Publish] call f with each snapshot it publishes,
// once that snapshot is current, on the publisher's goroutine (the watcher
// loop): f must not block. It lets a listener (the /events stream) see every
// publication in order without polling. Set it before the first Publish.
func (st *Store) SetOnPublish(f func(*Snapshot)) { st.notify.Store(&f) }
