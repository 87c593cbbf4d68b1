package api

import "time"

// NamedEnvironment is one version of an environment registered in a
// workspace (Azure ML's Environment.register): what runs run in, kept
// under a name so that scripts can ask for it with Environment.get.
type NamedEnvironment struct {
	Name    string `json:"name"`
	Version int    `json:"version"` // from 1; a new one on each changed registration
	// Environment is what a run's command runs in, as a run takes it.
	Environment Environment `json:"environment"`
	// Env are environment variables runs in it get.
	Env         map[string]string `json:"env,omitempty"`
	Description string            `json:"description,omitempty"`
	CreatedBy   string            `json:"created_by"`
	CreatedAt   time.Time         `json:"created_at"`
}

// EnvironmentRegister is the body of POST .../environments. Registering
// what the latest version already holds returns that version; anything
// else makes the next version.
type EnvironmentRegister struct {
	Name        string            `json:"name"`
	Environment Environment       `json:"environment"`
	Env         map[string]string `json:"env,omitempty"`
	Description string            `json:"description,omitempty"`
}

// EnvironmentList is the body of GET .../environments: the latest version
// of each, by name.
type EnvironmentList struct {
	Items []NamedEnvironment `json:"items"`
}
