lina.grid @g shape = [4] groups = {dp = array<i64: -1>}
